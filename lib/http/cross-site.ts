/**
 * Cross-site checks for every gateway route that changes something under the admin guard (the
 * membership routes, leadership, dead letters, the dashboard's actions). The guard alone admits
 * any loopback client when no admin token is configured, and a browser on the operator's machine
 * is one: a page of another site can POST there (a form, or `fetch` with `mode: 'no-cors'`), and a
 * page whose name resolves to 127.0.0.1 (DNS rebinding) is even same-origin. So:
 * - a request that names another site in `Origin` (or the opaque origin `null`) may not act:
 *   browsers send `Origin` on every cross-site POST, and command-line clients send none;
 * - without a token, the `Host` must be loopback too (a rebinding page sends its own name).
 * Found in review of the dashboard (issue 18): only its own actions had these checks.
 */
import type { IncomingMessage } from 'node:http';
import type { Json } from './body.js';

export function crossSiteRefusal(req: IncomingMessage, hasAdminToken: boolean): { status: number; body: Json } | undefined {
  const hostHeader = req.headers.host ?? '';
  const origin = req.headers.origin;
  if (origin === 'null') return { status: 403, body: { success: false, code: 'FORBIDDEN', error: 'a request from an opaque origin may not act' } };
  if (origin !== undefined) {
    let originHost = '';
    try {
      originHost = new URL(origin).host;
    } catch (error) {
      void error;
    }
    if (originHost !== hostHeader) return { status: 403, body: { success: false, code: 'FORBIDDEN', error: `a request from another site (Origin ${origin}) may not act` } };
  }
  if (!hasAdminToken && !isLoopbackHost(hostHeader)) {
    return { status: 403, body: { success: false, code: 'FORBIDDEN', error: `without the admin token, changes need a loopback Host (got ${JSON.stringify(hostHeader)})` } };
  }
  return undefined;
}

/** localhost, 127.x.y.z or [::1], with or without a port. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] ?? '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

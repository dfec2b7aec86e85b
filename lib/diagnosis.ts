/**
 * Why a call found no leader or timed out, in words: NO_LEADER and TIMEOUT errors carry a
 * `diagnosis` built here from what this member can see (its role and term, the last leader it
 * heard of, and the link to every other member as the transport reports it), and the same summary
 * is appended to the error's message, so a log line says "n2 unreachable (connect ECONNREFUSED
 * 127.0.0.1:7002)" instead of only "no leader within 5000 ms".
 */
import { RaftQueueError } from './contracts/errors.js';
import type { Diagnosis, PeerDiagnosis } from './contracts/errors.js';
import type { PeerLinkState } from './contracts/transport.js';

export interface DiagnosisInput {
  readonly memberId: string;
  readonly role: string;
  readonly term: number;
  readonly lastLeader: { readonly id: string; readonly term: number } | null;
  /** The other members of the configuration in force, with their addresses when known. */
  readonly peers: readonly { readonly id: string; readonly address?: string | undefined }[];
  /** The voters of that configuration (a majority of them elects a leader). */
  readonly voters: readonly string[];
  /** The transport's view of its links, when it reports one. */
  readonly links: Readonly<Record<string, PeerLinkState>> | undefined;
  readonly nowMs: number;
}

function describePeer(p: PeerDiagnosis): string {
  const why = p.detail ?? p.reason;
  const heard = p.lastHeardAgoMs === undefined ? '' : `, last heard ${formatAgo(p.lastHeardAgoMs)} ago`;
  return `${p.id} ${p.state}${why ? ` (${why})` : ''}${heard}`;
}

function formatAgo(ms: number): string {
  return ms < 10_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1000)} s`;
}

/** What this member sees, as data and as one sentence. */
export function diagnose(input: DiagnosisInput): Diagnosis {
  const peers: PeerDiagnosis[] = input.peers.map(({ id, address }) => {
    const link = input.links?.[id];
    if (link === undefined) return { id, ...(address ? { address } : {}), state: 'unknown' };
    return {
      id,
      ...(link.address ?? address ? { address: (link.address ?? address) as string } : {}),
      state: link.state,
      ...(link.reason !== undefined ? { reason: link.reason } : {}),
      ...(link.detail !== undefined ? { detail: link.detail } : {}),
      ...(link.lastHeardMs !== undefined ? { lastHeardAgoMs: Math.max(0, input.nowMs - link.lastHeardMs) } : {}),
    };
  });
  const parts: string[] = [`${input.memberId} is ${input.role} in term ${input.term}`];
  parts.push(input.lastLeader ? `last leader seen: ${input.lastLeader.id} (term ${input.lastLeader.term})` : 'no leader seen since start');
  if (peers.length === 0) parts.push('no other members known');
  else {
    const bad = peers.filter((p) => p.state !== 'connected');
    const reachable = peers.length - bad.length;
    parts.push(`${reachable} of ${peers.length} other members connected`);
    if (bad.length > 0) parts.push(bad.map(describePeer).join(', '));
    const size = input.voters.length;
    const needed = Math.floor(size / 2) + 1;
    const up = input.voters.filter((id) => id === input.memberId || peers.some((p) => p.id === id && p.state === 'connected')).length;
    if (size > 0 && up < needed) parts.push(`a leader needs ${needed} of ${size} voters running and connected: start the missing ones or fix their links`);
    if (input.links === undefined) parts.push('the transport reports no link states');
  }
  return { memberId: input.memberId, role: input.role, term: input.term, lastLeader: input.lastLeader, peers, summary: parts.join('; ') };
}

/** `error` with the diagnosis attached and summarized in its message (other codes unchanged). */
export function withDiagnosis(error: RaftQueueError, diagnosis: () => Diagnosis): RaftQueueError {
  if ((error.code !== 'NO_LEADER' && error.code !== 'TIMEOUT') || error.diagnosis !== undefined) return error;
  const d = diagnosis();
  return new RaftQueueError(error.code, `${error.message} [${d.summary}]`, { cause: error.cause ?? error, diagnosis: d });
}

/**
 * raftqueue/http: the HTTP gateway as a library. `createGateway(queue)` is the `node:http`
 * request handler `raftqueue node --http` serves (the course routes, groups, membership,
 * `GET /metrics` and the `GET /ui` dashboard) for a RaftQueue or a RaftQueueClient, to mount on
 * an app's own server; `formatMetrics` is the Prometheus text of one member.
 */
export { createGateway, GATEWAY_BODY_BYTES_MAX } from './gateway.js';
export type { GatewayHandler, GatewayOptions } from './gateway.js';
export { formatMetrics } from './metrics.js';
export { NOT_A_MEMBER } from './queue-kind.js';
export type { GatewayQueue } from './queue-kind.js';
export { UI_CSP } from './dashboard.js';

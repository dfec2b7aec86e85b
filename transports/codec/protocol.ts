/**
 * Wire-protocol constants shared by every transport.
 */

/**
 * The peer wire protocol version, carried in the handshake. Bump it on any change to the frame
 * format, the handshake, or a message schema; peers with a different version are refused.
 */
export const PROTOCOL_VERSION = 1;

/** Bytes of the frame header: a u32 big-endian body length. */
export const FRAME_HEADER_BYTES = 4;

/**
 * The largest frame accepted before a peer is authenticated. Handshake frames are a few hundred
 * bytes; anything larger before authentication is hostile and closes the connection, so an
 * unauthenticated client can never make a node buffer more than this.
 */
export const HANDSHAKE_FRAME_BYTES_MAX = 1024;

/** Bytes of each handshake nonce (server challenge and client nonce). */
export const NONCE_BYTES = 32;

/** Bytes of an HMAC-SHA256 proof. */
export const PROOF_BYTES = 32;

/** Node ids: 1-64 printable ASCII characters from a conservative set. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Cluster ids share the node id character set. */
export const CLUSTER_ID_PATTERN = NODE_ID_PATTERN;

/**
 * Why a handshake is refused, as carried by the `refused` control frame: a different protocol
 * version, another cluster id, a node id the listener does not know (or its own), a hello meant
 * for another node, or a proof that does not match the cluster secret. Two reasons concern only
 * hellos in the client role: the member accepts no clients (`clientsDisabled`), or already holds
 * as many as it accepts (`tooManyClients`).
 *
 * The `refused` frame is additive: it does not change PROTOCOL_VERSION, because a peer that does
 * not know it treats it as an unexpected handshake frame and closes, which is what it would do
 * anyway. It is also what a peer of another version reads, so its shape must never change. The
 * client reasons were added later; only a client is ever sent one, and a client of an older
 * version could not have sent a client hello, so no peer meets a reason it does not know.
 */
export const REFUSAL_REASONS = ['auth', 'cluster', 'unknownNode', 'version', 'wrongPeer', 'clientsDisabled', 'tooManyClients'] as const;

/** One of {@link REFUSAL_REASONS}. */
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/**
 * The `role` of a hello from a client process (absent: a member). Clients authenticate with the
 * cluster secret like members but never become peers: their frames are `client` frames only.
 */
export const CLIENT_ROLE = 'client';

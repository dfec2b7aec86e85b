/**
 * Every size limit that more than one layer checks, defined once. The facade validates user
 * input against these, the queue's command decoder and the node's forwarding schema enforce the
 * same numbers, so a value accepted at the edge is never refused deeper down (or the reverse).
 */

/** A member id: letters, digits, '.', '_' or '-', starting with a letter or digit. */
export const MEMBER_ID_CHARS_MAX = 64;
export const MEMBER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A cluster id (names the cluster at the handshake). */
export const CLUSTER_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** A transport address 'host:port' (a member's Raft address). */
export const ADDRESS_CHARS_MAX = 256;
export const ADDRESS_PATTERN = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/;

/** Topic and consumer group names: [A-Za-z0-9._-], not starting with '.'. */
export const TOPIC_NAME_CHARS_MAX = 200;
/**
 * Longest name of a dead-letter topic: a valid name plus repeated `.dlq` suffixes. Beyond it a
 * message is not dead-lettered (it stays redeliverable), so names cannot grow without bound.
 */
export const DEAD_LETTER_NAME_CHARS_MAX = 256;

/** An application's idempotency key for publish (`publishId`), in characters. */
export const PUBLISH_ID_CHARS_MAX = 256;
/** A subscriber's consumer id (the member id, a '.', and a UUID), in characters. */
export const CONSUMER_ID_CHARS_MAX = 256;

/** Most messages one claim may return (a subscriber's credit). */
export const CLAIM_MESSAGES_MAX = 10_000;

/** The largest payload `messageBytesMax` may allow (and then only with a frame bound above it). */
export const MESSAGE_BYTES_MAX_LIMIT = 64 << 20;
/** The default `messageBytesMax`. */
export const MESSAGE_BYTES_MAX_DEFAULT = 1 << 20;

/** The default largest peer frame (TCP transport), and the bounds `frameBytesMax` accepts. */
export const FRAME_BYTES_MAX_DEFAULT = 16 << 20;
export const FRAME_BYTES_MAX_MIN = 64 << 10;
export const FRAME_BYTES_MAX_LIMIT = 1 << 30;
/**
 * Room a frame keeps around the largest payload (8 KiB): the publish body's topic and publishId
 * (each at most 256 characters), the node's record and entry headers, the append message's
 * fields. A payload of at most `frameBytesMax - FRAME_OVERHEAD_BYTES` always fits one frame.
 */
export const FRAME_OVERHEAD_BYTES = 8 << 10;

/**
 * The sizes the node layer derives from the transport's frame bound, so that no message it
 * builds is ever larger than a frame: entries per append, a request batch, a snapshot chunk.
 */
export function frameDerivedSizes(frameBytesMax: number): { appendBytesMax: number; entryBytesMax: number; snapshotChunkBytes: number } {
  const quarter = Math.max(1024, Math.floor(frameBytesMax / 4));
  return {
    appendBytesMax: Math.min(1 << 20, quarter),
    entryBytesMax: Math.min(256 << 10, quarter),
    snapshotChunkBytes: Math.min(1 << 20, quarter),
  };
}

/** Longest error message carried between members (forwarded membership refusals). */
export const ERROR_MESSAGE_CHARS_MAX = 1024;

/**
 * Message headers (`publish(..., { headers })`): string keys to string values. At most
 * HEADERS_MAX of them, and their keys and values together at most HEADER_BYTES_MAX bytes of
 * UTF-8: they travel in the publish body beside the payload, whose room around the payload
 * (FRAME_OVERHEAD_BYTES, and a client's 4 KiB) they must fit with the topic and publishId.
 */
export const HEADERS_MAX = 32;
export const HEADER_BYTES_MAX = 2048;
/** A message key (`publish(..., { key })`, FIFO per key within a group), in characters. */
export const MESSAGE_KEY_CHARS_MAX = 256;
/** Message priorities: 0 (lowest) to 9 (highest); a message without one has PRIORITY_DEFAULT. */
export const PRIORITY_MAX = 9;
export const PRIORITY_DEFAULT = 4;
/** The longest delay or time to live a message may have: 1 year. */
export const MESSAGE_DELAY_MS_MAX = 365 * 86_400_000;
/** Most messages one `redrive` moves, and one `peek` returns. */
export const REDRIVE_MESSAGES_MAX = 10_000;
export const PEEK_MESSAGES_MAX = 1_000;

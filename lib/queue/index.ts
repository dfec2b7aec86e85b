/**
 * The queue state machine: commands, their entry encoding, apply, snapshot/restore.
 * Deterministic; see docs/queue.md for the semantics.
 */
export {
  CLAIM_MESSAGES_MAX,
  DEAD_LETTER_NAME_CHARS_MAX,
  PUBLISH_ID_CHARS_MAX,
  QUEUE_PACKR_OPTIONS,
  TOPIC_NAME_CHARS_MAX,
  deadLetterTopicName,
  decodeCommand,
  encodeCommand,
  binHeaderBytes,
  encodePublish,
  encodePublishBytes,
  validateTopicName,
  validateTopicOrDeadLetterName,
} from './commands.js';
export { DEDUP_WINDOW_MAX_DEFAULT, DEDUP_WINDOW_MS_DEFAULT } from './dedup.js';
export { QUEUE_STATE_VERSION } from './snapshot.js';
export {
  DEFAULT_GROUP,
  GROUPS_PER_TOPIC_MAX,
  MESSAGE_BYTES_MAX_DEFAULT,
  TOPIC_MAX_BYTES_DEFAULT,
  TOPIC_MAX_MESSAGES_DEFAULT,
} from './state.js';
export { QueueStateMachine } from './state-machine.js';

export type { Command, CommandKind, DecodedCommand, MessageOptions, TopicOptions } from './commands.js';
export type { ApplyErrorCode, ApplyResult, DeadLetterHeader, Delivery, QueueEvent, StoredMessage } from './state.js';
export type { ApplyOutput, GroupStats, PeekedMessage, QueueQuery, QueueStateMachineOptions, TopicStats } from './state-machine.js';

/**
 * Durable storage for the Raft log: the Storage contract and its two implementations.
 */
export { MemoryStorage } from './memory-storage.js';
export { FileStorage, STORAGE_FORMAT_VERSION, SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MIN } from './file-storage.js';
export { nodeStorageFs } from './storage-fs.js';
export type { FileStorageOptions } from './file-storage.js';
export type { MemberIdentity, Storage, StorageCallback, StorageStatus } from './storage.js';
export type { StorageFs } from './storage-fs.js';

// The MVCC key-value state machine: what a Concord node applies committed
// Raft entries to, serves reads from, and streams watches from.

export * from "./types.ts";
export type { KeyError, KeyErrorCode } from "./key.ts";
export { defaultMaxValueBytes, maxKeyBytes, validateKey, validatePrefix } from "./key.ts";
export { maxLeaseTtlSeconds, maxRangeLimit, maxTxnOps, validateCommand } from "./validate.ts";
export { decodeCommand, encodeCommand } from "./codec.ts";
export type { EventHistory } from "./history.ts";
export type { AlreadyApplied, KvObserver, KvStoreOptions, NoopResult } from "./store.ts";
export { KvStore, retentionCompactRevision } from "./store.ts";
export { encodeSnapshotSteps } from "./snapshot.ts";
export type { WatchEnd, WatchLimits, WatchOptions, WatchPoll, WatchSelector, WatchStart, Watcher } from "./watch.ts";
export { WatchHub, defaultPollEvents, defaultWatchLimits } from "./watch.ts";

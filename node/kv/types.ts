// Values exchanged between the key-value state machine and its callers (the
// node's apply loop, the HTTP server, watchers). All plain data. The store
// never mutates an object it has handed out, and callers must not mutate
// one they pass in or receive (values included: a KeyValue's `value` is the
// very array kept in history).

/** Revisions and leases are plain non-negative safe integers; 0 means "none". */
export type Revision = number;
export type LeaseId = number;

export interface KeyValue {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the put that created this incarnation of the key. 0 in a delete event's kv. */
  readonly createRevision: Revision;
  /** Revision of the last change; for a delete event's kv, the deletion's revision. */
  readonly modRevision: Revision;
  /** 1 on create, +1 per put; a delete resets it. 0 only in a delete event's kv (a tombstone). */
  readonly version: number;
  /** 0 = no lease. */
  readonly lease: LeaseId;
}

export interface KvEvent {
  readonly type: "put" | "delete";
  /** For a delete: the key, modRevision = the deletion's revision, an empty value, version 0. */
  readonly kv: KeyValue;
  /** The key's previous value, if it existed. */
  readonly prevKv?: KeyValue;
  /** Equal to kv.modRevision. Every event of one command (a txn, a prefix delete) shares it. */
  readonly revision: Revision;
}

// ---------------------------------------------------------------------------
// Commands: what goes through the Raft log. See codec.ts for the bytes.

export interface PutCommand {
  readonly type: "put";
  readonly key: string;
  readonly value: Uint8Array;
  /** Attach the key to this lease. Absent: no lease (a put detaches an earlier one, as in etcd). */
  readonly lease?: LeaseId;
  /** Succeed only if the key's modRevision is this (>= 1; a missing key has 0 and fails). */
  readonly ifMatch?: Revision;
  /** Succeed only if the key does not exist. Exclusive with ifMatch. */
  readonly ifNoneMatch?: true;
}

export interface DeleteCommand {
  readonly type: "delete";
  readonly key: string;
  /** Succeed only if the key exists with this modRevision. */
  readonly ifMatch?: Revision;
}

export interface DeletePrefixCommand {
  readonly type: "deletePrefix";
  /** "" deletes every key; the HTTP layer decides whether to allow that. */
  readonly prefix: string;
}

export type CompareTarget = "value" | "version" | "modRevision" | "createRevision";
export type CompareOp = "==" | "!=" | ">" | "<";

/**
 * One condition of a transaction. A missing key has version, modRevision and
 * createRevision 0; a `value` comparison on a missing key is always false
 * (as in etcd: there is no value to compare).
 */
export type Compare =
  | { readonly key: string; readonly target: "value"; readonly op: CompareOp; readonly value: Uint8Array }
  | {
      readonly key: string;
      readonly target: "version" | "modRevision" | "createRevision";
      readonly op: CompareOp;
      readonly value: number;
    };

/**
 * Operations inside a transaction. They run in order, and reads see the
 * writes before them. Preconditions belong in `compare`, so puts here carry none.
 */
export type TxnOp =
  | { readonly type: "put"; readonly key: string; readonly value: Uint8Array; readonly lease?: LeaseId }
  | { readonly type: "delete"; readonly key: string }
  | { readonly type: "deletePrefix"; readonly prefix: string }
  | { readonly type: "get"; readonly key: string }
  | { readonly type: "range"; readonly prefix: string; readonly limit: number; readonly after?: string };

export interface TxnCommand {
  readonly type: "txn";
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}

export interface LeaseGrantCommand {
  readonly type: "leaseGrant";
  /** Chosen by the proposer (the leader), >= 1. */
  readonly id: LeaseId;
  readonly ttlSeconds: number;
}

/** Revokes a lease and deletes its keys, at one revision. The leader proposes it when the lease expires. */
export interface LeaseRevokeCommand {
  readonly type: "leaseRevoke";
  readonly id: LeaseId;
}

/** Drops history at and below `revision`. */
export interface CompactCommand {
  readonly type: "compact";
  readonly revision: Revision;
}

export type KvCommand =
  | PutCommand
  | DeleteCommand
  | DeletePrefixCommand
  | TxnCommand
  | LeaseGrantCommand
  | LeaseRevokeCommand
  | CompactCommand;

// ---------------------------------------------------------------------------
// Results of applied commands. `revision` is the store's revision after the
// command: the new one if it changed something, else the current one.

export type TxnOpResult =
  | { readonly type: "put"; readonly kv: KeyValue; readonly prev?: KeyValue }
  | { readonly type: "delete"; readonly deleted: number; readonly prev?: KeyValue }
  | { readonly type: "deletePrefix"; readonly deleted: number }
  | { readonly type: "get"; readonly kv: KeyValue | null }
  | { readonly type: "range"; readonly kvs: readonly KeyValue[]; readonly more: boolean; readonly count: number };

export type CommandResult =
  | { readonly type: "put"; readonly revision: Revision; readonly kv: KeyValue; readonly prev?: KeyValue }
  | { readonly type: "delete"; readonly revision: Revision; readonly deleted: number; readonly prev?: KeyValue }
  | { readonly type: "deletePrefix"; readonly revision: Revision; readonly deleted: number }
  | {
      readonly type: "txn";
      readonly revision: Revision;
      readonly succeeded: boolean;
      /** One per operation of the branch that ran. */
      readonly results: readonly TxnOpResult[];
    }
  | { readonly type: "leaseGrant"; readonly id: LeaseId; readonly ttlSeconds: number }
  | { readonly type: "leaseRevoke"; readonly revision: Revision; readonly deleted: number }
  | { readonly type: "compact"; readonly compactRevision: Revision };

// ---------------------------------------------------------------------------
// Expected failures, as values.

export interface DecodeError {
  readonly type: "DecodeError";
  readonly reason: string;
  /** Byte offset where decoding failed. */
  readonly offset: number;
}

/** The revision asked for has been compacted away. */
export interface Compacted {
  readonly type: "Compacted";
  readonly compactRevision: Revision;
}

/** The revision asked for has not happened yet. */
export interface FutureRevision {
  readonly type: "FutureRevision";
  readonly revision: Revision;
  readonly currentRevision: Revision;
}

export type CommandError =
  /** Structurally invalid (bad key, oversized txn, ...). Rejected identically on every node. */
  | { readonly type: "InvalidCommand"; readonly reason: string }
  | { readonly type: "PreconditionFailed"; readonly key: string; readonly currentModRevision: Revision }
  | { readonly type: "LeaseNotFound"; readonly id: LeaseId }
  | { readonly type: "LeaseExists"; readonly id: LeaseId }
  | Compacted
  | FutureRevision
  /** From applyEncoded: the entry's bytes are not a command. The index is still consumed. */
  | DecodeError
  /** The index was at or below appliedIndex; nothing happened. */
  | { readonly type: "AlreadyApplied"; readonly index: number; readonly appliedIndex: number };

export type ApplyResult =
  | { readonly ok: true; readonly result: CommandResult }
  | { readonly ok: false; readonly error: CommandError };

// ---------------------------------------------------------------------------
// Reads.

export type ReadError =
  | Compacted
  | FutureRevision
  | { readonly type: "InvalidRequest"; readonly reason: string };

/** The key does not exist at `revision`. */
export interface NotFound {
  readonly type: "NotFound";
  readonly key: string;
  readonly revision: Revision;
}

export type GetResult =
  | { readonly ok: true; readonly kv: KeyValue; readonly revision: Revision }
  | { readonly ok: false; readonly error: NotFound | ReadError };

export interface RangeRequest {
  /** "" for every key. */
  readonly prefix: string;
  /** 1..maxRangeLimit. */
  readonly limit: number;
  /** Exclusive pagination cursor: start after this key (the last key of the previous page). */
  readonly after?: string;
  /** Read as of this revision. Absent: the current one. */
  readonly revision?: Revision;
}

export interface RangePage {
  readonly kvs: readonly KeyValue[];
  /** Whether keys with the prefix remain after the last one returned. */
  readonly more: boolean;
  /**
   * How many keys have the prefix (all pages, not just this one). Present for
   * reads at the current revision, where it costs O(log n); absent for
   * historical reads, where it would cost a scan.
   */
  readonly count?: number;
  /** The revision the page was read at. */
  readonly revision: Revision;
}

export type RangeResult = ({ readonly ok: true } & RangePage) | { readonly ok: false; readonly error: ReadError };

// ---------------------------------------------------------------------------
// Leases.

export interface LeaseInfo {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  /** How many keys are attached. */
  readonly keys: number;
}

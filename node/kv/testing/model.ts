// A naive reference implementation of the store's semantics, for model-based
// tests: a full copy of the key map per revision, sorting on every range.
// Obviously correct and hopelessly slow; the real store must agree with it
// on every result and every read.

import type { ApplyResult, Compare, GetResult, KeyValue, KvCommand, KvEvent, RangeRequest, RangeResult, TxnOp, TxnOpResult } from "../types.ts";
import { compareBytes } from "../key.ts";
import { validateCommand } from "../validate.ts";

type State = Map<string, KeyValue>;

export class Model {
  revision = 1;
  compactRevision = 0;
  appliedIndex = 0;
  /** states[r] is the key map at revision r. */
  private readonly states: State[] = [new Map<string, KeyValue>(), new Map<string, KeyValue>()];
  private cur: State = new Map();
  readonly leases = new Map<number, number>();
  readonly events: KvEvent[] = [];
  private wrote = false;

  apply(index: number, cmd: KvCommand): ApplyResult {
    if (index <= this.appliedIndex) return { ok: false, error: { type: "AlreadyApplied", index, appliedIndex: this.appliedIndex } };
    this.appliedIndex = index;
    this.cur = new Map(this.cur);
    this.wrote = false;
    const r = this.run(cmd);
    if (this.didWrite()) {
      this.revision++;
      this.states[this.revision] = this.cur;
    } else {
      this.cur = this.stateAt(this.revision);
    }
    return r;
  }

  private didWrite(): boolean {
    return this.wrote;
  }

  private get next(): number {
    return this.revision + 1;
  }

  private get resultRevision(): number {
    return this.wrote ? this.next : this.revision;
  }

  private run(cmd: KvCommand): ApplyResult {
    const invalid = validateCommand(cmd);
    if (invalid !== null) return { ok: false, error: invalid };
    switch (cmd.type) {
      case "put": {
        const prev = this.cur.get(cmd.key);
        const mod = prev?.modRevision ?? 0;
        if ((cmd.ifNoneMatch === true && prev !== undefined) || (cmd.ifMatch !== undefined && cmd.ifMatch !== mod)) {
          return { ok: false, error: { type: "PreconditionFailed", key: cmd.key, currentModRevision: mod } };
        }
        if (cmd.lease !== undefined && !this.leases.has(cmd.lease)) return { ok: false, error: { type: "LeaseNotFound", id: cmd.lease } };
        const kv = this.put(cmd.key, cmd.value, cmd.lease ?? 0);
        return { ok: true, result: prev === undefined ? { type: "put", revision: this.next, kv } : { type: "put", revision: this.next, kv, prev } };
      }
      case "delete": {
        const prev = this.cur.get(cmd.key);
        if (cmd.ifMatch !== undefined && cmd.ifMatch !== (prev?.modRevision ?? 0)) {
          return { ok: false, error: { type: "PreconditionFailed", key: cmd.key, currentModRevision: prev?.modRevision ?? 0 } };
        }
        if (prev === undefined) return { ok: true, result: { type: "delete", revision: this.revision, deleted: 0 } };
        this.del(cmd.key);
        return { ok: true, result: { type: "delete", revision: this.next, deleted: 1, prev } };
      }
      case "deletePrefix": {
        const n = this.delPrefix(cmd.prefix);
        return { ok: true, result: { type: "deletePrefix", revision: this.resultRevision, deleted: n } };
      }
      case "txn": {
        const succeeded = cmd.compare.every((c) => this.holds(c));
        const ops = succeeded ? cmd.success : cmd.failure;
        for (const op of ops) {
          if (op.type === "put" && op.lease !== undefined && !this.leases.has(op.lease)) return { ok: false, error: { type: "LeaseNotFound", id: op.lease } };
        }
        const results = ops.map((op) => this.op(op));
        return { ok: true, result: { type: "txn", revision: this.resultRevision, succeeded, results } };
      }
      case "leaseGrant":
        if (this.leases.has(cmd.id)) return { ok: false, error: { type: "LeaseExists", id: cmd.id } };
        this.leases.set(cmd.id, cmd.ttlSeconds);
        return { ok: true, result: { type: "leaseGrant", id: cmd.id, ttlSeconds: cmd.ttlSeconds } };
      case "leaseRevoke": {
        if (!this.leases.has(cmd.id)) return { ok: false, error: { type: "LeaseNotFound", id: cmd.id } };
        const keys = [...this.cur.values()].filter((kv) => kv.lease === cmd.id).map((kv) => kv.key).sort();
        for (const k of keys) this.del(k);
        this.leases.delete(cmd.id);
        return { ok: true, result: { type: "leaseRevoke", revision: this.resultRevision, deleted: keys.length } };
      }
      case "compact":
        if (cmd.revision > this.revision) return { ok: false, error: { type: "FutureRevision", revision: cmd.revision, currentRevision: this.revision } };
        if (cmd.revision <= this.compactRevision) return { ok: false, error: { type: "Compacted", compactRevision: this.compactRevision } };
        this.compactRevision = cmd.revision;
        return { ok: true, result: { type: "compact", compactRevision: cmd.revision } };
    }
  }

  private holds(c: Compare): boolean {
    const kv = this.cur.get(c.key);
    let cmp: number;
    if (c.target === "value") {
      if (kv === undefined) return false;
      cmp = compareBytes(kv.value, c.value);
    } else cmp = (kv?.[c.target] ?? 0) - c.value;
    return c.op === "==" ? cmp === 0 : c.op === "!=" ? cmp !== 0 : c.op === ">" ? cmp > 0 : cmp < 0;
  }

  private op(op: TxnOp): TxnOpResult {
    switch (op.type) {
      case "put": {
        const prev = this.cur.get(op.key);
        const kv = this.put(op.key, op.value, op.lease ?? 0);
        return prev === undefined ? { type: "put", kv } : { type: "put", kv, prev };
      }
      case "delete": {
        const prev = this.cur.get(op.key);
        if (prev === undefined) return { type: "delete", deleted: 0 };
        this.del(op.key);
        return { type: "delete", deleted: 1, prev };
      }
      case "deletePrefix":
        return { type: "deletePrefix", deleted: this.delPrefix(op.prefix) };
      case "get":
        return { type: "get", kv: this.cur.get(op.key) ?? null };
      case "range": {
        const page = rangeOf(this.cur, op.prefix, op.limit, op.after);
        return { type: "range", kvs: page.kvs, more: page.more, count: page.count };
      }
    }
  }

  private put(key: string, value: Uint8Array, lease: number): KeyValue {
    const prev = this.cur.get(key);
    const rev = this.next;
    const kv: KeyValue = { key, value, createRevision: prev?.createRevision ?? rev, modRevision: rev, version: (prev?.version ?? 0) + 1, lease };
    this.cur.set(key, kv);
    this.events.push(prev === undefined ? { type: "put", kv, revision: rev } : { type: "put", kv, prevKv: prev, revision: rev });
    this.wrote = true;
    return kv;
  }

  private del(key: string): void {
    const prev = this.cur.get(key);
    if (prev === undefined) throw new Error("model: delete of a missing key");
    this.cur.delete(key);
    const rev = this.next;
    this.events.push({ type: "delete", kv: { key, value: new Uint8Array(0), createRevision: 0, modRevision: rev, version: 0, lease: 0 }, prevKv: prev, revision: rev });
    this.wrote = true;
  }

  private delPrefix(prefix: string): number {
    const keys = [...this.cur.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const k of keys) this.del(k);
    return keys.length;
  }

  private stateAt(rev: number): State {
    const s = this.states[rev];
    if (s === undefined) throw new Error(`model: no state at ${rev}`);
    return s;
  }

  private readAt(revision: number | undefined): number | { type: "Compacted"; compactRevision: number } | { type: "FutureRevision"; revision: number; currentRevision: number } {
    if (revision === undefined || revision === this.revision) return this.revision;
    if (revision > this.revision) return { type: "FutureRevision", revision, currentRevision: this.revision };
    if (revision <= this.compactRevision) return { type: "Compacted", compactRevision: this.compactRevision };
    return revision;
  }

  get(key: string, revision?: number): GetResult {
    const at = this.readAt(revision);
    if (typeof at !== "number") return { ok: false, error: at };
    const kv = this.stateAt(at).get(key);
    return kv === undefined ? { ok: false, error: { type: "NotFound", key, revision: at } } : { ok: true, kv, revision: at };
  }

  range(req: RangeRequest): RangeResult {
    const at = this.readAt(req.revision);
    if (typeof at !== "number") return { ok: false, error: at };
    const page = rangeOf(this.stateAt(at), req.prefix, req.limit, req.after);
    return at === this.revision
      ? { ok: true, kvs: page.kvs, more: page.more, count: page.count, revision: at }
      : { ok: true, kvs: page.kvs, more: page.more, revision: at };
  }

  /** Live keys with their lease, for checking the store's lease bookkeeping. */
  leaseKeys(id: number): string[] {
    return [...this.cur.values()].filter((kv) => kv.lease === id).map((kv) => kv.key).sort();
  }
}

function rangeOf(state: State, prefix: string, limit: number, after: string | undefined): { kvs: KeyValue[]; more: boolean; count: number } {
  const all = [...state.keys()].filter((k) => k.startsWith(prefix)).sort();
  const rest = all.filter((k) => after === undefined || k > after);
  const kvs = rest.slice(0, limit).map((k) => {
    const kv = state.get(k);
    if (kv === undefined) throw new Error("model: missing key");
    return kv;
  });
  return { kvs, more: rest.length > limit, count: all.length };
}

// Seeded random commands for determinism, model and fuzz tests. Keys come
// from a small space (so commands collide), with non-ASCII and astral
// characters; values are short random bytes. Some commands are invalid or
// fail on purpose (bad keys, stale ifMatch, unknown leases, compaction
// outside the valid range), because those paths must be deterministic too.

import type { SeededRng } from "../../raft/rng.ts";
import type { Compare, CompareOp, KvCommand, TxnOp } from "../types.ts";

const prefixes = ["a/", "a/b/", "b/", "c", "é/", "😀/"];
const suffixes = ["x", "y", "z", "0", "1", "é", "😀", "\u{fffd}", "xy"];
const ops: readonly CompareOp[] = ["==", "!=", ">", "<"];

export interface GenState {
  readonly revision: number;
  readonly compactRevision: number;
}

export class CommandGen {
  private readonly rng: SeededRng;
  private nextLease = 1;

  constructor(rng: SeededRng) {
    this.rng = rng;
  }

  key(): string {
    const r = this.rng;
    return r.pick(prefixes) + r.pick(suffixes) + (r.chance(0.3) ? r.pick(suffixes) : "");
  }

  prefix(): string {
    const r = this.rng;
    if (r.chance(0.05)) return "";
    const p = r.pick(prefixes);
    return r.chance(0.3) ? p + r.pick(suffixes) : p;
  }

  value(): Uint8Array {
    const n = this.rng.int(9);
    const v = new Uint8Array(n);
    for (let i = 0; i < n; i++) v[i] = this.rng.int(256);
    return v;
  }

  lease(): number {
    // Mostly leases that exist or existed; sometimes one never granted.
    return this.rng.chance(0.1) ? 1000 + this.rng.int(10) : 1 + this.rng.int(Math.max(1, this.nextLease));
  }

  private revisionNear(s: GenState): number {
    return Math.max(1, s.revision - this.rng.int(6) + 1);
  }

  command(s: GenState): KvCommand {
    const r = this.rng;
    const x = r.float();
    if (x < 0.02) return { type: "put", key: r.pick(["", "bad\u0001key", "\ud800"]), value: this.value() };
    if (x < 0.42) {
      const cmd: { type: "put"; key: string; value: Uint8Array; lease?: number; ifMatch?: number; ifNoneMatch?: true } = {
        type: "put",
        key: this.key(),
        value: this.value(),
      };
      if (r.chance(0.2)) cmd.lease = this.lease();
      const p = r.float();
      if (p < 0.1) cmd.ifMatch = this.revisionNear(s);
      else if (p < 0.2) cmd.ifNoneMatch = true;
      return cmd;
    }
    if (x < 0.55) return r.chance(0.2) ? { type: "delete", key: this.key(), ifMatch: this.revisionNear(s) } : { type: "delete", key: this.key() };
    if (x < 0.6) return { type: "deletePrefix", prefix: this.prefix() };
    if (x < 0.78) return this.txn(s);
    if (x < 0.86) return { type: "leaseGrant", id: r.chance(0.8) ? this.nextLease++ : this.lease(), ttlSeconds: 1 + r.int(60) };
    if (x < 0.92) return { type: "leaseRevoke", id: this.lease() };
    return { type: "compact", revision: Math.max(1, s.compactRevision + r.int(Math.max(1, s.revision - s.compactRevision + 3)) - 1) };
  }

  txn(s: GenState): KvCommand {
    const r = this.rng;
    const compare: Compare[] = [];
    for (let i = r.int(4); i > 0; i--) {
      const t = r.int(4);
      const key = this.key();
      const op = r.pick(ops);
      compare.push(
        t === 0
          ? { key, target: "value", op, value: this.value() }
          : { key, target: t === 1 ? "version" : t === 2 ? "modRevision" : "createRevision", op, value: r.int(3) === 0 ? 0 : this.revisionNear(s) },
      );
    }
    return { type: "txn", compare, success: this.txnOps(), failure: this.txnOps() };
  }

  private txnOps(): TxnOp[] {
    const r = this.rng;
    const out: TxnOp[] = [];
    for (let i = r.int(5); i > 0; i--) {
      const x = r.float();
      if (x < 0.4) {
        const op: { type: "put"; key: string; value: Uint8Array; lease?: number } = { type: "put", key: this.key(), value: this.value() };
        if (r.chance(0.15)) op.lease = this.lease();
        out.push(op);
      } else if (x < 0.6) out.push({ type: "delete", key: this.key() });
      else if (x < 0.7) out.push({ type: "deletePrefix", prefix: this.prefix() });
      else if (x < 0.85) out.push({ type: "get", key: this.key() });
      else {
        const limit = 1 + r.int(4);
        out.push(r.chance(0.5) ? { type: "range", prefix: this.prefix(), limit, after: this.key() } : { type: "range", prefix: this.prefix(), limit });
      }
    }
    return out;
  }
}

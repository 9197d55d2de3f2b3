// Concurrent clients that issue operations on a small key set against real
// members and record every operation with its invoke and complete times.
// A timeout, a connection error, or a 503 that may hide an applied write is
// indeterminate: it may or may not have taken effect.

import type { Completion, Operation } from "./linearizability/history.ts";
import type { KvInput, KvOutput } from "./linearizability/kv-model.ts";
import type { SerializableRead, SerializableReadOutput } from "./linearizability/serializable.ts";
import { SeededRng } from "../node/raft/rng.ts";

export interface Target {
  readonly name: string;
  readonly url: string;
  /** Bumped on every restart: a member's state may go back across one. */
  readonly generation: number;
}

export interface WorkloadOptions {
  readonly seed: number;
  /** Clients per member, plus this many that pick a member at random for each operation. */
  readonly clientsPerMember: number;
  readonly clusterClients: number;
  readonly keys: number;
  readonly requestTimeoutMs: number;
  /** Pause between a client's operations. */
  readonly thinkMs: number;
}

export interface Recorded {
  readonly history: Operation<KvInput, KvOutput>[];
  readonly serializable: SerializableRead[];
  /** Lease-attached puts, transactions and lease calls: exercised, counted, not in the model. */
  readonly other: { ok: number; failed: number };
  /** Every write acknowledged with its value and mod revision, for the durability check. */
  readonly acked: Map<string, { value: string; modRevision: number }[]>;
}

const now = (): number => performance.now();

type HttpResult = { readonly status: number; readonly headers: Headers; readonly body: string } | { readonly error: string };

async function http(url: string, init: RequestInit, timeoutMs: number): Promise<HttpResult> {
  try {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    return { status: r.status, headers: r.headers, body: await r.text() };
  } catch (e) {
    return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

/** 503s that happen before anything is proposed: the write certainly did not happen. */
function certainlyNotApplied(body: string): boolean {
  try {
    const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
    return code === "NoLeader" || code === "ShuttingDown" || code === "TooManyRequests" || code === "LeaderTransferring" || code === "NotMember";
  } catch {
    return false;
  }
}

export class Workload {
  private readonly o: WorkloadOptions;
  private readonly targets: () => readonly Target[];
  private stopped = false;
  private seq = 0;
  readonly rec: Recorded = { history: [], serializable: [], other: { ok: 0, failed: 0 }, acked: new Map() };
  private running: Promise<void>[] = [];
  /** Last known mod revision per key, for compare-and-swap. */
  private readonly seen = new Map<string, number>();

  constructor(o: WorkloadOptions, targets: () => readonly Target[]) {
    this.o = o;
    this.targets = targets;
  }

  key(k: number): string {
    return `chaos/k${k}`;
  }

  start(): void {
    const members = this.targets();
    let client = 0;
    for (const [k, m] of members.entries()) {
      // Look the target up each time: its generation changes on restarts.
      for (let c = 0; c < this.o.clientsPerMember; c++) this.running.push(this.client(client++, () => this.targets()[k] ?? m));
    }
    for (let c = 0; c < this.o.clusterClients; c++) {
      const rng = new SeededRng(this.o.seed * 7919 + c);
      this.running.push(this.client(client++, () => rng.pick(this.targets())));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  private async client(id: number, pick: () => Target): Promise<void> {
    const rng = new SeededRng(this.o.seed * 104729 + id);
    while (!this.stopped) {
      const t = pick();
      const key = this.key(rng.int(this.o.keys));
      const dice = rng.int(100);
      if (dice < 30) await this.put(id, t, key, { type: "put", key, value: `c${id}-${this.seq++}` });
      else if (dice < 50) await this.get(id, t, key);
      else if (dice < 62) await this.serializableGet(id, t, key);
      else if (dice < 75) {
        const rev = this.seen.get(key);
        const input: KvInput =
          rev === undefined
            ? { type: "put", key, value: `c${id}-${this.seq++}`, ifNoneMatch: true }
            : { type: "put", key, value: `c${id}-${this.seq++}`, ifMatch: rev };
        await this.put(id, t, key, input);
      } else if (dice < 85) await this.del(id, t, key);
      else await this.other(id, t, rng);
      if (this.o.thinkMs > 0) await new Promise((r) => setTimeout(r, rng.int(this.o.thinkMs)));
    }
  }

  private record(client: number, input: KvInput, invoke: number, completion: Completion<KvOutput>): void {
    this.rec.history.push({ client, input, invoke, completion });
  }

  private indeterminate(reason: string): Completion<KvOutput> {
    return { type: "indeterminate", reason };
  }

  private async put(client: number, t: Target, key: string, input: Extract<KvInput, { type: "put" }>): Promise<void> {
    const headers: Record<string, string> = {};
    if (input.ifMatch !== undefined) headers["If-Match"] = `"${input.ifMatch}"`;
    if (input.ifNoneMatch === true) headers["If-None-Match"] = "*";
    const invoke = now();
    const r = await http(`${t.url}/v1/kv/${key}`, { method: "PUT", body: input.value, headers }, this.o.requestTimeoutMs);
    const at = now();
    if ("error" in r) { this.record(client, input, invoke, this.indeterminate(r.error)); return; }
    if (r.status === 200 || r.status === 201) {
      const b = JSON.parse(r.body) as { modRevision: number; prevModRevision?: number };
      this.seen.set(key, b.modRevision);
      const acked = this.rec.acked.get(key) ?? [];
      acked.push({ value: input.value, modRevision: b.modRevision });
      this.rec.acked.set(key, acked);
      this.record(client, input, invoke, {
        type: "returned",
        at,
        output: { type: "written", modRevision: b.modRevision, created: r.status === 201, ...(b.prevModRevision === undefined ? {} : { prevModRevision: b.prevModRevision }) },
      }); return;
    }
    if (r.status === 412) {
      const b = JSON.parse(r.body) as { error: { currentModRevision: number } };
      this.seen.set(key, b.error.currentModRevision);
      this.record(client, input, invoke, { type: "returned", at, output: { type: "preconditionFailed", currentModRevision: b.error.currentModRevision } }); return;
    }
    if (r.status === 503 && certainlyNotApplied(r.body)) return; // nothing happened: not an operation
    this.record(client, input, invoke, this.indeterminate(`HTTP ${r.status} ${r.body.slice(0, 120)}`));
  }

  private async get(client: number, t: Target, key: string): Promise<void> {
    const input: KvInput = { type: "get", key };
    const invoke = now();
    const r = await http(`${t.url}/v1/kv/${key}`, {}, this.o.requestTimeoutMs);
    const at = now();
    if ("error" in r) return; // a read that did not return tells nothing
    if (r.status === 200) {
      const modRevision = Number(r.headers.get("X-Concord-Mod-Revision"));
      this.seen.set(key, modRevision);
      this.record(client, input, invoke, { type: "returned", at, output: { type: "value", value: r.body, modRevision } }); return;
    }
    if (r.status === 404) { this.record(client, input, invoke, { type: "returned", at, output: { type: "notFound" } }); return; }
    // 503s and timeouts: a read has no effect, so leave it out.
  }

  private async serializableGet(client: number, t: Target, key: string): Promise<void> {
    const invoke = now();
    const r = await http(`${t.url}/v1/kv/${key}?consistency=serializable`, {}, this.o.requestTimeoutMs);
    const returned = now();
    if ("error" in r) return;
    const revision = Number(r.headers.get("X-Concord-Revision"));
    let output: SerializableReadOutput;
    if (r.status === 200) output = { type: "value", value: r.body, modRevision: Number(r.headers.get("X-Concord-Mod-Revision")), revision };
    else if (r.status === 404) output = { type: "notFound", revision };
    else return;
    // One session per client and member run: a member's state only moves
    // forward while it runs (a restart may take it back to its last snapshot).
    this.rec.serializable.push({ session: `${client}@${t.name}#${t.generation}`, key, invoke, returned, output });
  }

  private async del(client: number, t: Target, key: string): Promise<void> {
    const input: KvInput = { type: "delete", key };
    const invoke = now();
    const r = await http(`${t.url}/v1/kv/${key}`, { method: "DELETE" }, this.o.requestTimeoutMs);
    const at = now();
    if ("error" in r) { this.record(client, input, invoke, this.indeterminate(r.error)); return; }
    if (r.status === 200) {
      const b = JSON.parse(r.body) as { revision: number; prevModRevision?: number };
      this.record(client, input, invoke, {
        type: "returned",
        at,
        output: { type: "deleted", revision: b.revision, ...(b.prevModRevision === undefined ? {} : { prevModRevision: b.prevModRevision }) },
      }); return;
    }
    if (r.status === 404) { this.record(client, input, invoke, { type: "returned", at, output: { type: "notFound" } }); return; }
    if (r.status === 503 && certainlyNotApplied(r.body)) return;
    this.record(client, input, invoke, this.indeterminate(`HTTP ${r.status}`));
  }

  /** Operations outside the register model: lease-attached puts and transactions on their own keys. */
  private async other(client: number, t: Target, rng: SeededRng): Promise<void> {
    const count = (r: HttpResult): void => {
      if (!("error" in r) && r.status < 300) this.rec.other.ok++;
      else this.rec.other.failed++;
    };
    if (rng.chance(0.5)) {
      const lease = await http(`${t.url}/v1/leases`, { method: "POST", body: JSON.stringify({ ttl: 2 }), headers: { "Content-Type": "application/json" } }, this.o.requestTimeoutMs);
      count(lease);
      if ("error" in lease || lease.status !== 201) return;
      const id = (JSON.parse(lease.body) as { id: number }).id;
      count(await http(`${t.url}/v1/kv/chaos-lease/${client}?lease=${id}`, { method: "PUT", body: "x" }, this.o.requestTimeoutMs));
    } else {
      const key = `chaos-txn/${rng.int(3)}`;
      const body = {
        compare: [{ key, target: "version", op: ">", value: 0 }],
        success: [{ put: { key, value: `t${client}` } }, { get: { key } }],
        failure: [{ put: { key, value: `f${client}` } }],
      };
      count(await http(`${t.url}/v1/txn`, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }, this.o.requestTimeoutMs));
    }
  }
}

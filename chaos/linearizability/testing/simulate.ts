// Random histories that are linearizable by construction: clients issue
// overlapping requests, and each takes effect at one instant inside its
// interval, on a real `KvStore` (node/kv), applied in that order. The
// outputs are the store's. Indeterminate operations take effect at a random
// later time (possibly after their client gave up) or never. Serializable
// reads read the store at an older revision, never older than the session's
// previous read. Everything comes from one seeded Rng.

import { KvStore } from "../../../node/kv/store.ts";
import type { ApplyResult, GetResult } from "../../../node/kv/types.ts";
import type { SeededRng } from "../../../node/raft/rng.ts";
import { EventHeap } from "../../../node/sim/heap.ts";
import type { Operation } from "../history.ts";
import type { KvInput, KvOutput, Revision } from "../kv-model.ts";
import type { SerializableRead, SerializableReadOutput } from "../serializable.ts";

export interface SimOptions {
  readonly operations: number;
  readonly keys: number;
  /** Each client has one request in flight at a time: the concurrency. */
  readonly clients: number;
  /** Probability that a linearizable request gets no answer. */
  readonly indeterminate: number;
  /** Probability that a read is serializable instead of linearizable. */
  readonly serializable: number;
  /** Whether written outputs carry `created` and `prevModRevision`. */
  readonly recordPrev: boolean;
}

/** One version of a key, in revision order; `value` null for a deletion. */
export interface Version {
  readonly value: string | null;
  readonly modRevision: Revision;
  /** History index of the operation that wrote it. */
  readonly writer: number;
  /** History index of the next write of the key, if any. */
  supersededBy: number | null;
}

export interface Simulated {
  readonly history: Operation<KvInput, KvOutput>[];
  readonly reads: SerializableRead[];
  readonly versions: ReadonlyMap<string, readonly Version[]>;
}

interface Pending {
  readonly client: number;
  readonly input: KvInput;
  readonly serializable: boolean;
  readonly invoke: number;
  /** Index into `history`, or into `reads` for a serializable read. */
  readonly slot: number;
  output: KvOutput | null;
  readOutput: SerializableReadOutput | null;
}

type Event =
  | { readonly at: number; readonly seq: number; readonly type: "invoke"; readonly client: number }
  | { readonly at: number; readonly seq: number; readonly type: "apply" | "return" | "timeout"; readonly op: Pending };

const latency = 10;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function simulate(rng: SeededRng, o: SimOptions): Simulated {
  const store = new KvStore();
  let applied = 0;
  const heap = new EventHeap<Event>();
  let seq = 0;
  const invokeAt = (at: number, client: number): void => {
    heap.push({ at, seq: seq++, type: "invoke", client });
  };
  const schedule = (at: number, type: "apply" | "return" | "timeout", op: Pending): void => {
    heap.push({ at, seq: seq++, type, op });
  };
  const keys = Array.from({ length: o.keys }, (_, i) => `key/${i}`);
  const known = Array.from({ length: o.clients }, () => new Map<string, Revision>());
  const sessionRevision = Array.from({ length: o.clients }, () => 1);
  const history: Operation<KvInput, KvOutput>[] = [];
  const reads: SerializableRead[] = [];
  const versions = new Map<string, Version[]>(keys.map((k) => [k, []]));
  let issued = 0;

  const learn = (client: number, key: string, out: KvOutput | SerializableReadOutput): void => {
    const m = known[client];
    if (m === undefined) return;
    if (out.type === "value" || out.type === "written") m.set(key, out.modRevision);
    else if (out.type === "preconditionFailed") m.set(key, out.currentModRevision);
  };

  const chooseInput = (client: number): { input: KvInput; serializable: boolean } => {
    const key = rng.pick(keys);
    const value = `v${issued}`;
    const lastSeen = known[client]?.get(key) ?? 0;
    const ifMatch = lastSeen > 0 && rng.chance(0.8) ? lastSeen : 1 + rng.int(store.revision);
    const r = rng.float();
    if (r < 0.4) return { input: { type: "get", key }, serializable: rng.chance(o.serializable) };
    if (r < 0.7) return { input: { type: "put", key, value }, serializable: false };
    if (r < 0.82) return { input: { type: "put", key, value, ifMatch }, serializable: false };
    if (r < 0.87) return { input: { type: "put", key, value, ifNoneMatch: true }, serializable: false };
    if (r < 0.95) return { input: { type: "delete", key }, serializable: false };
    return { input: { type: "delete", key, ifMatch }, serializable: false };
  };

  const apply = (op: Pending): void => {
    const input = op.input;
    switch (input.type) {
      case "get": {
        if (!op.serializable) {
          op.output = getOutput(store.get(input.key));
          return;
        }
        // A lagging replica: somewhere between the session's last read and now.
        const from = sessionRevision[op.client] ?? 1;
        const at = Math.min(store.revision, from + Math.floor(rng.float() ** 2 * (store.revision - from + 1)));
        sessionRevision[op.client] = at;
        op.readOutput = serializableOutput(store.get(input.key, { revision: at }), at);
        return;
      }
      case "put": {
        const r = store.apply(++applied, {
          type: "put",
          key: input.key,
          value: encoder.encode(input.value),
          ...(input.ifMatch === undefined ? {} : { ifMatch: input.ifMatch }),
          ...(input.ifNoneMatch === undefined ? {} : { ifNoneMatch: input.ifNoneMatch }),
        });
        const out = writeOutput(r, o.recordPrev);
        op.output = out;
        if (out.type === "written") addVersion(versions, input.key, { value: input.value, modRevision: out.modRevision, writer: op.slot, supersededBy: null });
        return;
      }
      case "delete": {
        const r = store.apply(++applied, { type: "delete", key: input.key, ...(input.ifMatch === undefined ? {} : { ifMatch: input.ifMatch }) });
        const out = writeOutput(r, o.recordPrev);
        op.output = out;
        if (out.type === "deleted") addVersion(versions, input.key, { value: null, modRevision: out.revision ?? 0, writer: op.slot, supersededBy: null });
        return;
      }
    }
  };

  const nextRequest = (at: number, client: number): void => {
    invokeAt(at + rng.float() * latency * 0.5, client);
  };

  for (let c = 0; c < o.clients; c++) invokeAt(rng.float() * latency, c);
  for (let e = heap.pop(); e !== undefined; e = heap.pop()) {
    switch (e.type) {
      case "invoke": {
        if (issued >= o.operations) break;
        const { input, serializable } = chooseInput(e.client);
        issued++;
        const slot = serializable ? reads.length : history.length;
        const op: Pending = { client: e.client, input, serializable, invoke: e.at, slot, output: null, readOutput: null };
        if (serializable) reads.push({ session: `client-${e.client}`, key: input.key, invoke: e.at, returned: e.at, output: { type: "notFound" } });
        else history.push({ client: e.client, input, invoke: e.at, completion: { type: "indeterminate", reason: "in flight" } });
        const duration = latency * (0.1 + 1.9 * rng.float());
        if (!serializable && rng.chance(o.indeterminate)) {
          // The client gives up after 2 latencies; the request may still land later, or never.
          if (rng.chance(0.5)) schedule(e.at + 4 * latency * (0.01 + rng.float()), "apply", op);
          schedule(e.at + 2 * latency, "timeout", op);
        } else {
          schedule(e.at + duration * (0.01 + 0.98 * rng.float()), "apply", op);
          schedule(e.at + duration, "return", op);
        }
        break;
      }
      case "apply":
        apply(e.op);
        break;
      case "return": {
        const op = e.op;
        if (op.serializable) {
          if (op.readOutput === null) throw new Error("a serializable read returned before it was applied");
          reads[op.slot] = { session: `client-${op.client}`, key: op.input.key, invoke: op.invoke, returned: e.at, output: op.readOutput };
          learn(op.client, op.input.key, op.readOutput);
        } else {
          if (op.output === null) throw new Error("an operation returned before it was applied");
          history[op.slot] = { client: op.client, input: op.input, invoke: op.invoke, completion: { type: "returned", at: e.at, output: op.output } };
          learn(op.client, op.input.key, op.output);
        }
        nextRequest(e.at, op.client);
        break;
      }
      case "timeout":
        history[e.op.slot] = { client: e.op.client, input: e.op.input, invoke: e.op.invoke, completion: { type: "indeterminate", reason: "timeout" } };
        nextRequest(e.at, e.op.client);
        break;
    }
  }
  return { history, reads, versions };
}

function addVersion(versions: Map<string, Version[]>, key: string, v: Version): void {
  const list = versions.get(key);
  if (list === undefined) throw new Error(`unknown key ${key}`);
  const last = list[list.length - 1];
  if (last !== undefined) last.supersededBy = v.writer;
  list.push(v);
}

function getOutput(r: GetResult): KvOutput {
  if (r.ok) return { type: "value", value: decoder.decode(r.kv.value), modRevision: r.kv.modRevision };
  if (r.error.type === "NotFound") return { type: "notFound" };
  throw new Error(`read failed: ${r.error.type}`);
}

function serializableOutput(r: GetResult, revision: Revision): SerializableReadOutput {
  if (r.ok) return { type: "value", value: decoder.decode(r.kv.value), modRevision: r.kv.modRevision, revision };
  if (r.error.type === "NotFound") return { type: "notFound", revision };
  throw new Error(`read failed: ${r.error.type}`);
}

function writeOutput(r: ApplyResult, recordPrev: boolean): KvOutput {
  if (!r.ok) {
    if (r.error.type === "PreconditionFailed") return { type: "preconditionFailed", currentModRevision: r.error.currentModRevision };
    throw new Error(`write failed: ${r.error.type}`);
  }
  const res = r.result;
  if (res.type === "put") {
    if (!recordPrev) return { type: "written", modRevision: res.kv.modRevision };
    return res.prev === undefined
      ? { type: "written", modRevision: res.kv.modRevision, created: true }
      : { type: "written", modRevision: res.kv.modRevision, created: false, prevModRevision: res.prev.modRevision };
  }
  if (res.type === "delete") {
    if (res.deleted === 0) return { type: "notFound" };
    return recordPrev && res.prev !== undefined
      ? { type: "deleted", revision: res.revision, prevModRevision: res.prev.modRevision }
      : { type: "deleted", revision: res.revision };
  }
  throw new Error(`unexpected result ${res.type}`);
}

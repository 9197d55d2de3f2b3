// What the main thread and the beacon worker share (PeerBeacon): the
// datagram format, and the shared-memory block through which they talk
// without waiting on each other's event loop.
//
// Datagram (big-endian): "CB", version 1, kind (1 = the sender leads `term`,
// 2 = the sender follows the receiver in `term`), term as a float64, then
// cluster id, sender id and receiver id, each as a byte length and UTF-8.
//
// Shared block, in slots (one per remote peer, assigned by the main thread):
// - the main thread writes its own term, role and leader's slot, when it
//   wrote them, and per slot when it last received a Raft message from that
//   peer ("contact"), under one sequence lock, once per tick;
// - the worker writes per slot the last beacon it received (kind, term, the
//   slot's generation, when), each slot under its own sequence lock.
// A sequence lock: the writer makes the counter odd, writes, makes it even;
// a reader retries while it is odd or changed under it.

export const beaconSlots = 64;
export const beaconVersion = 1;

export type BeaconKind = "leads" | "follows";

export interface BeaconDatagram {
  readonly kind: BeaconKind;
  readonly term: number;
  readonly clusterId: string;
  readonly from: string;
  readonly to: string;
}

export interface BadBeacon {
  readonly type: "BadBeacon";
  readonly reason: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeBeacon(b: BeaconDatagram): Buffer {
  const parts = [b.clusterId, b.from, b.to].map((s) => encoder.encode(s));
  let size = 12;
  for (const p of parts) {
    if (p.length > 255) throw new Error(`beacon: id longer than 255 bytes`);
    size += 1 + p.length;
  }
  const buf = Buffer.allocUnsafe(size);
  buf[0] = 0x43;
  buf[1] = 0x42;
  buf[2] = beaconVersion;
  buf[3] = b.kind === "leads" ? 1 : 2;
  buf.writeDoubleBE(b.term, 4);
  let off = 12;
  for (const p of parts) {
    buf[off] = p.length;
    buf.set(p, off + 1);
    off += 1 + p.length;
  }
  return buf;
}

export function decodeBeacon(buf: Uint8Array): BeaconDatagram | BadBeacon {
  const bad = (reason: string): BadBeacon => ({ type: "BadBeacon", reason });
  if (buf.length < 15) return bad(`${buf.length} bytes is too short`);
  if (buf[0] !== 0x43 || buf[1] !== 0x42) return bad("not a beacon");
  if (buf[2] !== beaconVersion) return bad(`version ${String(buf[2])}`);
  const kindByte = buf[3];
  if (kindByte !== 1 && kindByte !== 2) return bad(`kind ${String(kindByte)}`);
  const term = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getFloat64(4);
  if (!Number.isSafeInteger(term) || term < 1) return bad("term is not a positive integer");
  const strings: string[] = [];
  let off = 12;
  for (let k = 0; k < 3; k++) {
    const len = buf[off];
    if (len === undefined || off + 1 + len > buf.length) return bad("truncated");
    try {
      strings.push(decoder.decode(buf.subarray(off + 1, off + 1 + len)));
    } catch {
      return bad("an id is not UTF-8");
    }
    off += 1 + len;
  }
  if (off !== buf.length) return bad("trailing bytes");
  const [clusterId, from, to] = strings as [string, string, string];
  return { kind: kindByte === 1 ? "leads" : "follows", term, clusterId, from, to };
}

export function isBadBeacon(x: BeaconDatagram | BadBeacon): x is BadBeacon {
  return "type" in x;
}

/** Milliseconds on the monotonic clock that every thread of the process shares. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const roleCodes = { other: 0, leader: 1, follower: 2 } as const;
export type BeaconRole = keyof typeof roleCodes;

// Int32 words.
const iOwnSeq = 0;
const iOwnRole = 1;
const iOwnLead = 2;
const iSlotSeq = 4;
const iSlotKind = iSlotSeq + beaconSlots;
const iSlotGen = iSlotKind + beaconSlots;
const int32Words = iSlotGen + beaconSlots;
// Float64 words.
const fOwnTerm = 0;
const fOwnAt = 1;
const fContact = 2;
const fSlotTerm = fContact + beaconSlots;
const fSlotTime = fSlotTerm + beaconSlots;
const float64Words = fSlotTime + beaconSlots;
// Counters (BigInt64), written by the worker.
export const counterNames = ["sent", "received", "invalid", "sendFailed"] as const;
export type BeaconCounter = (typeof counterNames)[number];

export interface SharedBuffers {
  readonly int32: SharedArrayBuffer;
  readonly float64: SharedArrayBuffer;
  readonly counters: SharedArrayBuffer;
}

export interface OwnState {
  readonly term: number;
  readonly role: BeaconRole;
  /** The leader's slot, or -1. */
  readonly leadSlot: number;
  /** When the main thread wrote this (monotonicMs). */
  readonly at: number;
  /** Per slot, when a Raft message from that peer last arrived (0: never). */
  readonly contact: Float64Array;
}

export interface SlotBeacon {
  readonly gen: number;
  readonly kind: BeaconKind;
  readonly term: number;
  readonly at: number;
}

const maxSpins = 1000;

export class BeaconMemory {
  readonly buffers: SharedBuffers;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly counts: BigInt64Array;

  constructor(buffers?: SharedBuffers) {
    this.buffers = buffers ?? {
      int32: new SharedArrayBuffer(int32Words * 4),
      float64: new SharedArrayBuffer(float64Words * 8),
      counters: new SharedArrayBuffer(counterNames.length * 8),
    };
    this.i32 = new Int32Array(this.buffers.int32);
    this.f64 = new Float64Array(this.buffers.float64);
    this.counts = new BigInt64Array(this.buffers.counters);
    Atomics.store(this.i32, iOwnLead, -1);
  }

  // --- Written by the main thread ---------------------------------------------

  writeOwn(term: number, role: BeaconRole, leadSlot: number, contact: ReadonlyMap<number, number>, at: number): void {
    Atomics.add(this.i32, iOwnSeq, 1);
    this.f64[fOwnTerm] = term;
    this.f64[fOwnAt] = at;
    Atomics.store(this.i32, iOwnRole, roleCodes[role]);
    Atomics.store(this.i32, iOwnLead, leadSlot);
    for (const [slot, at] of contact) this.f64[fContact + slot] = at;
    Atomics.add(this.i32, iOwnSeq, 1);
  }

  /** Forgets a slot's contact, for a slot given to another peer (under the same lock as writeOwn). */
  clearContact(slot: number): void {
    Atomics.add(this.i32, iOwnSeq, 1);
    this.f64[fContact + slot] = 0;
    Atomics.add(this.i32, iOwnSeq, 1);
  }

  readSlot(slot: number): SlotBeacon | null {
    for (let spin = 0; spin < maxSpins; spin++) {
      const s1 = Atomics.load(this.i32, iSlotSeq + slot);
      if ((s1 & 1) === 1) continue;
      const kind = Atomics.load(this.i32, iSlotKind + slot);
      const gen = Atomics.load(this.i32, iSlotGen + slot);
      const term = this.f64[fSlotTerm + slot] ?? 0;
      const at = this.f64[fSlotTime + slot] ?? 0;
      if (Atomics.load(this.i32, iSlotSeq + slot) !== s1) continue;
      if (kind === 0) return null;
      return { gen, kind: kind === 1 ? "leads" : "follows", term, at };
    }
    return null;
  }

  counter(name: BeaconCounter): number {
    return Number(Atomics.load(this.counts, counterNames.indexOf(name)));
  }

  // --- Written by the worker --------------------------------------------------

  /** When the main thread last wrote its state (0: never, or a write in progress). */
  ownAt(): number {
    const s1 = Atomics.load(this.i32, iOwnSeq);
    if ((s1 & 1) === 1) return 0;
    const at = this.f64[fOwnAt] ?? 0;
    return Atomics.load(this.i32, iOwnSeq) === s1 ? at : 0;
  }

  readOwn(): OwnState | null {
    for (let spin = 0; spin < maxSpins; spin++) {
      const s1 = Atomics.load(this.i32, iOwnSeq);
      if ((s1 & 1) === 1) continue;
      const term = this.f64[fOwnTerm] ?? 0;
      const at = this.f64[fOwnAt] ?? 0;
      const role = Atomics.load(this.i32, iOwnRole);
      const leadSlot = Atomics.load(this.i32, iOwnLead);
      const contact = this.f64.slice(fContact, fContact + beaconSlots);
      if (Atomics.load(this.i32, iOwnSeq) !== s1) continue;
      return { term, role: role === 1 ? "leader" : role === 2 ? "follower" : "other", leadSlot, at, contact };
    }
    return null;
  }

  writeSlot(slot: number, b: SlotBeacon): void {
    Atomics.add(this.i32, iSlotSeq + slot, 1);
    Atomics.store(this.i32, iSlotKind + slot, b.kind === "leads" ? 1 : 2);
    Atomics.store(this.i32, iSlotGen + slot, b.gen);
    this.f64[fSlotTerm + slot] = b.term;
    this.f64[fSlotTime + slot] = b.at;
    Atomics.add(this.i32, iSlotSeq + slot, 1);
  }

  count(name: BeaconCounter): void {
    Atomics.add(this.counts, counterNames.indexOf(name), 1n);
  }
}

/** What the main thread tells the worker. */
export type ToWorker =
  | { readonly type: "peers"; readonly peers: readonly { readonly slot: number; readonly gen: number; readonly id: string; readonly host: string; readonly port: number }[] }
  | { readonly type: "stop" };

/** What the worker tells the main thread. */
export type FromWorker = { readonly type: "ready" } | { readonly type: "failed"; readonly message: string } | { readonly type: "stopped" };

export interface WorkerConfig {
  readonly self: string;
  readonly clusterId: string;
  readonly bindHost: string;
  readonly bindPort: number;
  readonly intervalMs: number;
  readonly lateMs: number;
  readonly bridgeMs: number;
  readonly buffers: SharedBuffers;
}

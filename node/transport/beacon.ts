// Liveness beacons: small UDP datagrams, on the peer port's number, sent by a
// worker thread of their own, that tell the leader's followers "I still lead
// term T" and the leader "I still follow you in term T".
//
// Why: heartbeats are sent and read by the main thread. When the main thread
// waits for a core (two cores saturated by client load, a snapshot and the
// garbage collector's threads) or pauses for a collection, its heartbeats
// can be late by more than the election timeout, and the followers elect a
// new leader although the old one is fine: a spurious leader change, with
// every write in flight failed. The worker mostly sleeps, so it gets a core
// soon after its timer fires, and it runs during the main thread's pauses.
//
// Bounds, so that a beacon bridges a late event loop and nothing else:
// - the worker sends only while the main thread is late: it has not ticked
//   for `lateMs` (a quarter of the election timeout). A member whose loop
//   runs on time sends no beacons at all;
// - the worker sends to a peer only while the main thread has received a
//   Raft message from it within `bridgeMs` (the main thread records contact
//   on every tick), so a broken peer stream, or a main thread that stopped,
//   silences the beacons within `bridgeMs`;
// - the Raft core accepts a beacon only from the leader it already follows,
//   in its own term (MsgBeacon): beacons can keep a leader, never choose one,
//   and carry no log position. Safety never depended on timing; a wedged
//   leader is replaced at most `bridgeMs` later than without beacons.
//
// Beacons are best effort: a lost datagram, a closed UDP port or a failed
// start only means the heartbeats alone decide, as before.

import { Worker } from "node:worker_threads";
import type { NodeId } from "../raft/types.ts";
import type { BeaconRole, FromWorker, SlotBeacon, ToWorker, WorkerConfig } from "./beacon-shared.ts";
import { BeaconMemory, beaconSlots, monotonicMs } from "./beacon-shared.ts";
import type { Logger } from "./observability.ts";
import { silentLogger } from "./observability.ts";
import type { PeerAddress } from "./peer-url.ts";
import { isInvalidPeerUrl, parsePeerUrl } from "./peer-url.ts";

export interface BeaconOptions {
  readonly self: NodeId;
  readonly clusterId: string;
  /** Where to receive: the peer listener's host and (actual) port, over UDP. */
  readonly bind: PeerAddress;
  /** How often the worker checks, and sends while the main thread is late (the heartbeat interval). */
  readonly intervalMs: number;
  /** How long after the main thread's last tick the worker starts to send. */
  readonly lateMs: number;
  /** How long after the last Raft message from a peer the worker keeps beaconing to it. */
  readonly bridgeMs: number;
  readonly logger?: Logger;
}

export interface BeaconStartError {
  readonly type: "BeaconStartFailed";
  readonly message: string;
}

export interface BeaconView {
  readonly term: number;
  readonly role: BeaconRole;
  readonly lead: NodeId | null;
}

export interface ReceivedBeacon {
  readonly term: number;
  readonly leads: boolean;
}

interface SlotInfo {
  readonly slot: number;
  readonly gen: number;
  /** The receive time of the last beacon taken from this slot. */
  taken: number;
}

const workerUrl = new URL("./beacon-worker.ts", import.meta.url);

export class PeerBeacon {
  private readonly worker: Worker;
  private readonly mem: BeaconMemory;
  private readonly logger: Logger;
  private readonly slots = new Map<NodeId, SlotInfo>();
  private readonly freeSlots: number[] = [];
  private readonly gens = new Int32Array(beaconSlots);
  private readonly contact = new Map<number, number>();
  private stopped: Promise<void> | null = null;

  private constructor(worker: Worker, mem: BeaconMemory, logger: Logger) {
    this.worker = worker;
    this.mem = mem;
    this.logger = logger;
    for (let s = beaconSlots - 1; s >= 0; s--) this.freeSlots.push(s);
  }

  /** Starts the worker and binds its UDP socket; a failure is a value (run without beacons). */
  static start(opts: BeaconOptions): Promise<PeerBeacon | BeaconStartError> {
    const mem = new BeaconMemory();
    const cfg: WorkerConfig = {
      self: opts.self,
      clusterId: opts.clusterId,
      bindHost: opts.bind.host,
      bindPort: opts.bind.port,
      intervalMs: opts.intervalMs,
      lateMs: opts.lateMs,
      bridgeMs: opts.bridgeMs,
      buffers: mem.buffers,
    };
    const logger = opts.logger ?? silentLogger;
    return new Promise((resolve) => {
      let worker: Worker;
      try {
        worker = new Worker(workerUrl, { workerData: cfg, name: "concord-beacon" });
      } catch (e) {
        resolve({ type: "BeaconStartFailed", message: (e as Error).message });
        return;
      }
      let settled = false;
      const fail = (message: string): void => {
        if (settled) return;
        settled = true;
        void worker.terminate();
        resolve({ type: "BeaconStartFailed", message });
      };
      worker.once("error", (e: Error) => {
        fail(e.message);
      });
      worker.once("exit", (code) => {
        fail(`the beacon worker exited (${code})`);
      });
      worker.once("message", (m: FromWorker) => {
        if (m.type !== "ready") {
          fail(m.type === "failed" ? m.message : "the beacon worker stopped");
          return;
        }
        settled = true;
        worker.removeAllListeners();
        const b = new PeerBeacon(worker, mem, logger);
        worker.on("error", (e: Error) => {
          logger.warn({ err: e.message }, "the beacon worker failed; heartbeats alone decide from now on");
        });
        worker.unref();
        resolve(b);
      });
    });
  }

  /** The peers to beacon to and accept beacons from (the member directory, without this member). */
  setPeers(directory: Iterable<readonly [NodeId, string]>): void {
    const wanted = new Map<NodeId, PeerAddress>();
    for (const [id, url] of directory) {
      const a = parsePeerUrl(url);
      if (!isInvalidPeerUrl(a)) wanted.set(id, a);
    }
    for (const [id, info] of this.slots) {
      if (wanted.has(id)) continue;
      this.slots.delete(id);
      this.contact.delete(info.slot);
      this.mem.clearContact(info.slot);
      this.freeSlots.push(info.slot);
    }
    const peers: { slot: number; gen: number; id: string; host: string; port: number }[] = [];
    for (const [id, a] of wanted) {
      let info = this.slots.get(id);
      if (info === undefined) {
        const slot = this.freeSlots.pop();
        if (slot === undefined) {
          this.logger.warn({ peer: id }, `more than ${beaconSlots} peers: no beacons to or from this one`);
          continue;
        }
        // A new generation, so that a late beacon from the slot's previous peer is not taken for this one.
        const gen = (this.gens[slot] ?? 0) + 1;
        this.gens[slot] = gen;
        info = { slot, gen, taken: 0 };
        this.slots.set(id, info);
      }
      peers.push({ slot: info.slot, gen: info.gen, id, host: a.host, port: a.port });
    }
    this.post({ type: "peers", peers });
  }

  /**
   * Once per tick: this member's Raft view, and the peers a Raft message
   * arrived from since the last call. The worker beacons from this view.
   */
  publish(view: BeaconView, heard: Iterable<NodeId>): void {
    const now = monotonicMs();
    for (const id of heard) {
      const info = this.slots.get(id);
      if (info !== undefined) this.contact.set(info.slot, now);
    }
    const leadSlot = view.lead === null ? -1 : (this.slots.get(view.lead)?.slot ?? -1);
    this.mem.writeOwn(view.term, view.role, leadSlot, this.contact, now);
  }

  /** The beacon `peer` sent most recently, if it arrived after the last one taken. */
  take(peer: NodeId): ReceivedBeacon | null {
    const info = this.slots.get(peer);
    if (info === undefined) return null;
    const b: SlotBeacon | null = this.mem.readSlot(info.slot);
    if (b === null || b.gen !== info.gen || b.at <= info.taken) return null;
    info.taken = b.at;
    return { term: b.term, leads: b.kind === "leads" };
  }

  /** Datagrams sent, received (valid, from a known peer), refused, and sends that failed. */
  counters(): { sent: number; received: number; invalid: number; sendFailed: number } {
    return {
      sent: this.mem.counter("sent"),
      received: this.mem.counter("received"),
      invalid: this.mem.counter("invalid"),
      sendFailed: this.mem.counter("sendFailed"),
    };
  }

  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      // A worker that does not answer within a second is terminated.
      const timer = setTimeout(() => {
        void this.worker.terminate().then(done, done);
      }, 1000);
      this.worker.once("exit", done);
      this.post({ type: "stop" });
    });
    return this.stopped;
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }
}

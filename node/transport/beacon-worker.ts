// The beacon worker (PeerBeacon): a thread that mostly sleeps, so the
// scheduler gives it a core soon after its timer fires even when the main
// thread waits for one. It wakes when the main thread would be late (lateMs
// after its last tick) and, if it is, sends the member's Raft view (from
// shared memory) every interval to the peers it has lately heard from over
// the peer streams. It records the beacons it receives for the main thread.

import { createSocket } from "node:dgram";
import type { Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIPv6 } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import type { FromWorker, ToWorker, WorkerConfig } from "./beacon-shared.ts";
import { BeaconMemory, decodeBeacon, encodeBeacon, isBadBeacon, monotonicMs } from "./beacon-shared.ts";

interface Peer {
  readonly slot: number;
  readonly gen: number;
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** The host resolved to an address (a name is looked up again every resolveEveryMs). */
  address: string | null;
  resolvedAt: number;
  resolving: boolean;
}

const resolveEveryMs = 5000;

function run(port: NonNullable<typeof parentPort>, cfg: WorkerConfig): void {
  const mem = new BeaconMemory(cfg.buffers);
  const family = isIPv6(cfg.bindHost) ? 6 : 4;
  const socket: Socket = createSocket({ type: family === 6 ? "udp6" : "udp4" });
  let peers: Peer[] = [];
  const byId = new Map<string, Peer>();
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const post = (m: FromWorker): void => {
    port.postMessage(m);
  };

  const resolve = (p: Peer): void => {
    if (p.resolving) return;
    p.resolving = true;
    lookup(p.host, { family })
      .then((r) => {
        p.address = r.address;
      })
      .catch(() => {
        // Keep the last address: a name that stops resolving for a while (a pod
        // being rescheduled) is not a reason to go quiet to its old address.
      })
      .finally(() => {
        p.resolving = false;
        p.resolvedAt = monotonicMs();
      });
  };

  /** Beacons if the main thread is late; returns when to look again (ms). */
  const beat = (): number => {
    const now = monotonicMs();
    // A main thread that ticks on time sends its own heartbeats and responses:
    // sleep until it would be late if it did not tick again (the usual case,
    // checked without copying the shared state), so that the worker wakes a
    // few dozen times a second, not at every heartbeat interval.
    const sinceTick = now - mem.ownAt();
    if (sinceTick < cfg.lateMs) return Math.max(1, cfg.lateMs - sinceTick);
    const own = mem.readOwn();
    if (own === null || own.role === "other" || now - own.at < cfg.lateMs) return cfg.intervalMs;
    for (const p of peers) {
      if (p.address === null || now - p.resolvedAt > resolveEveryMs) resolve(p);
      if (p.address === null) continue;
      // Only to a peer the main thread heard from lately over Raft: a beacon
      // bridges a late event loop, never a broken peer stream or a main thread
      // that stopped (then the contact times stop moving).
      const contact = own.contact[p.slot] ?? 0;
      if (contact === 0 || now - contact > cfg.bridgeMs) continue;
      let kind: "leads" | "follows";
      if (own.role === "leader") kind = "leads";
      else if (own.leadSlot === p.slot) kind = "follows";
      else continue;
      const buf = encodeBeacon({ kind, term: own.term, clusterId: cfg.clusterId, from: cfg.self, to: p.id });
      socket.send(buf, p.port, p.address, (err) => {
        mem.count(err === null ? "sent" : "sendFailed");
      });
    }
    return cfg.intervalMs;
  };

  socket.on("message", (msg) => {
    const b = decodeBeacon(msg);
    if (isBadBeacon(b) || b.clusterId !== cfg.clusterId || b.to !== cfg.self) {
      mem.count("invalid");
      return;
    }
    const p = byId.get(b.from);
    if (p === undefined) {
      mem.count("invalid");
      return;
    }
    mem.count("received");
    mem.writeSlot(p.slot, { gen: p.gen, kind: b.kind, term: b.term, at: monotonicMs() });
  });

  port.on("message", (m: ToWorker) => {
    switch (m.type) {
      case "peers": {
        const next: Peer[] = [];
        byId.clear();
        for (const q of m.peers) {
          const old = peers.find((p) => p.id === q.id && p.host === q.host);
          const p: Peer = { ...q, address: old?.address ?? null, resolvedAt: old?.resolvedAt ?? 0, resolving: false };
          next.push(p);
          byId.set(p.id, p);
        }
        peers = next;
        return;
      }
      case "stop":
        stopped = true;
        if (timer !== null) clearTimeout(timer);
        socket.close(() => {
          post({ type: "stopped" });
          port.close();
        });
        return;
    }
  });

  let bound = false;
  socket.on("error", (err) => {
    // Only binding can fail this way; send errors (a peer's port closed) go to
    // the send callback and are counted there.
    if (!bound) post({ type: "failed", message: err.message });
  });
  socket.bind({ address: cfg.bindHost, port: cfg.bindPort, exclusive: true }, () => {
    bound = true;
    const loop = (): void => {
      if (!stopped) timer = setTimeout(loop, beat());
    };
    loop();
    post({ type: "ready" });
  });
}

if (parentPort !== null) run(parentPort, workerData as WorkerConfig);

// npm run bench:core: committed entries per second through a 3-node cluster
// of the pure Raft core, with in-memory storage and direct message delivery
// (no disk, no network, no faults). It measures the cost of the core itself.

import { parseArgs } from "node:util";
import type { Message, NodeId, Ready } from "../node/raft/index.ts";
import { MemoryStorage, RawNode, SeededRng, defaultRaftConfig, nodeId } from "../node/raft/index.ts";

interface Member {
  readonly raw: RawNode;
  readonly storage: MemoryStorage;
  applied: number;
}

class Cluster {
  readonly members = new Map<NodeId, Member>();
  private queue: Message[] = [];

  constructor(size: number, seed: number) {
    const ids = Array.from({ length: size }, (_, k) => nodeId(`n${k + 1}`));
    const rng = new SeededRng(seed);
    for (const id of ids) {
      const storage = new MemoryStorage();
      storage.bootstrap(ids, new Uint8Array(0));
      const cfg = { ...defaultRaftConfig(id, rng.fork()), maxSizePerMsg: 1 << 20, maxInflightMsgs: 256, maxUncommittedBytes: 0 };
      this.members.set(id, { raw: new RawNode(cfg, storage), storage, applied: 0 });
    }
  }

  member(id: NodeId): Member {
    const m = this.members.get(id);
    if (m === undefined) throw new Error(`no member ${id}`);
    return m;
  }

  /** Acts on one Ready in the documented order, with instant "disk". */
  private handle(m: Member, rd: Ready): void {
    if (rd.snapshot !== null) m.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) m.storage.append(rd.entries);
    if (rd.hardState !== null) m.storage.setHardState(rd.hardState);
    for (const msg of rd.messages) this.queue.push(msg);
    m.applied += rd.committedEntries.length;
    m.raw.advance(rd);
  }

  /** Processes readies and delivers messages until nothing is left to do. */
  drain(): void {
    for (;;) {
      let progressed = false;
      for (const m of this.members.values()) {
        while (m.raw.hasReady()) {
          this.handle(m, m.raw.ready());
          progressed = true;
        }
      }
      if (this.queue.length > 0) {
        const q = this.queue;
        this.queue = [];
        for (const msg of q) this.member(msg.to).raw.step(msg);
        progressed = true;
      }
      if (!progressed) return;
    }
  }

  elect(id: NodeId): void {
    this.member(id).raw.campaign();
    this.drain();
    if (this.member(id).raw.raft.role !== "leader") throw new Error("election failed");
  }
}

function run(batch: number, pipeline: number, totalEntries: number, valueBytes: number): { perSec: number; ms: number } {
  const c = new Cluster(3, 1);
  const leaderId = nodeId("n1");
  c.elect(leaderId);
  const leader = c.member(leaderId);
  const value = new Uint8Array(valueBytes).fill(7);
  const batchData = Array.from({ length: batch }, () => value);
  const startApplied = leader.applied;
  const t0 = performance.now();
  while (leader.applied - startApplied < totalEntries) {
    for (let p = 0; p < pipeline; p++) {
      const r = leader.raw.proposeBatch(batchData);
      if (!r.ok) throw new Error(`proposal refused: ${r.error.type}`);
    }
    c.drain();
  }
  const ms = performance.now() - t0;
  const n = leader.applied - startApplied;
  // Every member must have applied everything: the figure counts committed, replicated entries.
  for (const m of c.members.values()) if (m.applied < leader.applied - 1) throw new Error("a follower fell behind");
  return { perSec: (n / ms) * 1000, ms };
}

const { values } = parseArgs({ options: { entries: { type: "string", default: "400000" }, value: { type: "string", default: "64" } } });
const total = Number(values.entries);
const valueBytes = Number(values.value);

// Warm up the JIT so the first row is not penalised.
run(100, 4, 100_000, valueBytes);

process.stdout.write(`Raft core, 3 nodes in memory, ${valueBytes}-byte entries, node ${process.version}\n`);
process.stdout.write("batch  pipeline  entries/s    time\n");
for (const [batch, pipeline] of [
  [1, 1],
  [1, 64],
  [10, 16],
  [100, 4],
  [1000, 1],
] as const) {
  const entries = batch * pipeline === 1 ? Math.min(total, 100_000) : total;
  const r = run(batch, pipeline, entries, valueBytes);
  process.stdout.write(
    `${String(batch).padStart(5)}  ${String(pipeline).padStart(8)}  ${Math.round(r.perSec).toLocaleString("en-US").padStart(10)}  ${r.ms.toFixed(0).padStart(5)}ms\n`,
  );
}

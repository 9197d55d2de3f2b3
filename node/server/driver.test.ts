// The driver keeps heartbeats flowing while a disk write is slow: messages
// that do not depend on local durability never wait behind an fsync.

import { afterEach, describe, expect, test } from "vitest";
import type { ConfChange, ConfState, Message, Ready, Snapshot } from "../raft/index.ts";
import { MemoryStorage, SeededRng, defaultRaftConfig, nodeId } from "../raft/index.ts";
import type { Applier, Persistence } from "./driver.ts";
import { RaftDriver, nextSnapshotIndex } from "./driver.ts";
import type { Envelope } from "./envelope.ts";

const leaderId = nodeId("a");
const learnerId = nodeId("b");

/** A disk whose writes take `delayMs`; it records when each write started and ended. */
class SlowDisk implements Persistence {
  readonly memory = new MemoryStorage();
  delayMs = 0;
  writes: { start: number; end: number }[] = [];
  /** When each write started (writes records a write once it ends). */
  started: number[] = [];

  async persist(rd: Pick<Ready, "hardState" | "entries" | "snapshot">): Promise<{ ok: true }> {
    const start = performance.now();
    this.started.push(start);
    await new Promise((r) => setTimeout(r, this.delayMs));
    if (rd.snapshot !== null) this.memory.applySnapshot(rd.snapshot);
    this.memory.append(rd.entries);
    if (rd.hardState !== null) this.memory.setHardState(rd.hardState);
    this.writes.push({ start, end: performance.now() });
    return { ok: true };
  }

  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Promise<{ ok: true }> {
    this.memory.createSnapshot(index, conf, data);
    return Promise.resolve({ ok: true });
  }
}

class CountingApplier implements Applier {
  applied = 1;
  applyEnvelope(index: number, _env: Envelope): unknown {
    this.applied = index;
    return index;
  }
  applyOther(index: number): void {
    this.applied = index;
  }
  applyConf(index: number, _change: ConfChange, _conf: ConfState): void {
    this.applied = index;
  }
  // eslint-disable-next-line require-yield -- nothing to encode in steps
  *snapshotSteps(): Generator<void, Uint8Array, void> {
    return new Uint8Array(0);
  }
  restore(s: Snapshot): void {
    this.applied = s.meta.index;
  }
  appliedIndex(): number {
    return this.applied;
  }
}

let driver: RaftDriver | null = null;

/** A driver for the one voter `leaderId` on `disk` (bootstrapped by the caller), a tick every 10 ms. */
function singleVoter(disk: SlowDisk, applier: Applier): RaftDriver {
  const d = new RaftDriver(
    {
      raft: { ...defaultRaftConfig(leaderId, new SeededRng(7)), electionTick: 10, heartbeatTick: 1 },
      storage: disk,
      tickMs: 10,
      snapshotCount: 1_000_000,
      requestTimeoutMs: 10_000,
    },
    disk.memory,
    applier,
    {},
    "test",
  );
  driver = d;
  return d;
}

afterEach(() => {
  driver?.stop();
  driver = null;
});

describe("the driver", () => {
  test("heartbeats keep going out while an fsync is slow", async () => {
    const disk = new SlowDisk();
    // One voter (it leads at once) and a learner that receives its heartbeats.
    disk.memory.bootstrap([leaderId], new Uint8Array(0));
    const learnerAdd: ConfChange = { type: "addLearner", node: learnerId };
    const sent: { at: number; m: Message }[] = [];
    const d = singleVoter(disk, new CountingApplier());
    d.setTransport({
      send: (ms) => {
        for (const m of ms) sent.push({ at: performance.now(), m });
      },
      flush: () => undefined,
    });
    d.start();
    d.raw.campaign();
    d.kick();
    await waitFor(() => d.raw.raft.role === "leader");
    // Wait for the no-op to commit, then add the learner.
    await waitFor(() => d.raw.raft.log.committed >= 2);
    expect(d.proposeConfChange(learnerAdd).ok).toBe(true);
    await waitFor(() => sent.some((s) => s.m.type === "heartbeat" && s.m.to === learnerId));

    // Now every write takes 1 s.
    disk.delayMs = 1000;
    const before = disk.writes.length;
    void d.propose("kv", new Uint8Array([1, 2, 3]));
    await waitFor(() => disk.writes.length > before, 5000);
    const slow = disk.writes[before];
    if (slow === undefined) throw new Error("no slow write recorded");
    expect(slow.end - slow.start).toBeGreaterThanOrEqual(990);
    const during = sent.filter((s) => s.m.type === "heartbeat" && s.at > slow.start + 50 && s.at < slow.end - 50);
    // A heartbeat every 10 ms: many while the 1 s write is in flight (more
    // than 10 even if a loaded machine runs the ticks 90 ms apart), not one
    // after it.
    expect(during.length).toBeGreaterThan(10);
  });
});

describe("the driver's order of work", () => {
  test("a Ready's messages are written to the peers before its entries are applied", async () => {
    const disk = new SlowDisk();
    disk.memory.bootstrap([leaderId], new Uint8Array(0));
    const journal: string[] = [];
    class JournalApplier extends CountingApplier {
      override applyEnvelope(index: number, env: Envelope): unknown {
        journal.push(`apply ${index}`);
        return super.applyEnvelope(index, env);
      }
    }
    const d = singleVoter(disk, new JournalApplier());
    d.setTransport({
      send: (ms) => {
        for (const m of ms) {
          if (m.type !== "app") continue;
          journal.push(`send app commit ${m.commit}`);
          // The learner takes every append, so that it stays in step and each commit sends it one.
          const index = m.entries.at(-1)?.index ?? m.prevIndex;
          setImmediate(() => {
            d.receive({ type: "appResp", from: learnerId, to: leaderId, term: m.term, index, reject: false, rejectHint: 0, logTerm: 0 });
          });
        }
      },
      flush: () => {
        journal.push("flush");
      },
    });
    d.start();
    d.raw.campaign();
    d.kick();
    await waitFor(() => d.raw.raft.role === "leader");
    await waitFor(() => d.raw.raft.log.committed >= 2);
    // A learner, so that every commit has an append (carrying it) to send.
    expect(d.proposeConfChange({ type: "addLearner", node: learnerId }).ok).toBe(true);
    await waitFor(() => d.raw.raft.log.committed >= 3);
    const out = await d.propose("kv", new Uint8Array([1]));
    expect(out.ok).toBe(true);
    const at = journal.findIndex((j) => j.startsWith("apply "));
    expect(at).toBeGreaterThan(0);
    const index = Number(journal[at]?.slice(6));
    const before = journal.slice(0, at);
    // The append that tells the learner about this commit was queued and then flushed, both before the apply.
    const sentAt = before.lastIndexOf(`send app commit ${index}`);
    expect(sentAt, journal.join("\n")).toBeGreaterThanOrEqual(0);
    expect(before.slice(sentAt + 1), journal.join("\n")).toContain("flush");
  });
});

describe("applying while the disk writes", () => {
  test("a committed entry is applied and answered while the fsync of a later one runs, not after it", async () => {
    const disk = new SlowDisk();
    disk.memory.bootstrap([leaderId], new Uint8Array(0));
    const d = singleVoter(disk, new CountingApplier());
    d.setTransport({ send: () => undefined, flush: () => undefined });
    d.start();
    d.raw.campaign();
    d.kick();
    await waitFor(() => d.raw.raft.role === "leader");
    await waitFor(() => d.raw.raft.log.committed >= 2);

    // Every write now takes 1 s. The single voter commits x once x's own
    // write is done; y, proposed while x is being written, goes into the
    // next write, together with x's commit.
    disk.delayMs = 1000;
    const before = disk.started.length;
    const x = d.propose("kv", new Uint8Array([1]));
    await waitFor(() => disk.started.length > before);
    let xAnsweredAt = 0;
    void x.then(() => {
      xAnsweredAt = performance.now();
    });
    const y = d.propose("kv", new Uint8Array([2]));
    expect((await x).ok).toBe(true);
    expect((await y).ok).toBe(true);
    const xWrite = disk.started[before];
    const yWrite = disk.started[before + 1];
    if (xWrite === undefined || yWrite === undefined) throw new Error(`expected two writes, saw ${disk.started.length - before}`);
    const yEnd = disk.writes.find((w) => w.start === yWrite)?.end;
    if (yEnd === undefined) throw new Error("y's write was not recorded");
    // x was answered after its own write, and while y's was still running.
    expect(xAnsweredAt).toBeGreaterThanOrEqual(xWrite + 990);
    expect(xAnsweredAt).toBeLessThan(yEnd);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("the snapshot schedule", () => {
  test("snapshots come every count entries, at each member's own phase", () => {
    const count = 100_000;
    // Three members: the first snapshots are spread over the interval, then each comes count later.
    const first = [0, 1, 2].map((rank) => nextSnapshotIndex(1, count, rank, 3));
    expect(first).toEqual([100_000, 133_333, 66_666]);
    for (const [rank, at] of first.entries()) expect(nextSnapshotIndex(at, count, rank, 3)).toBe(at + count);
    // A member one snapshot behind (or ahead) stays on its phase.
    expect(nextSnapshotIndex(133_400, count, 1, 3)).toBe(233_333);
    // A single member snapshots every count entries from the start.
    expect(nextSnapshotIndex(0, 10, 0, 1)).toBe(10);
    expect(nextSnapshotIndex(10, 10, 0, 1)).toBe(20);
  });

  test("a snapshot is never less than half a count, nor more than one and a half counts, after the last one", () => {
    for (const count of [1, 2, 3, 7, 50, 1000]) {
      for (const members of [1, 2, 3, 5, 7]) {
        for (let rank = 0; rank < members; rank++) {
          for (let last = 0; last < 3 * count; last += Math.max(1, Math.floor(count / 7))) {
            const next = nextSnapshotIndex(last, count, rank, members);
            expect(next - last).toBeGreaterThanOrEqual(Math.ceil(count / 2));
            expect(next - last).toBeLessThan(Math.ceil(count / 2) + count);
            expect((next - Math.floor((rank * count) / members)) % count).toBe(0);
          }
        }
      }
    }
  });

  test("members of one cluster snapshot at different indexes", () => {
    for (const members of [3, 5]) {
      const at = Array.from({ length: members }, (_, rank) => nextSnapshotIndex(500, 10_000, rank, members));
      expect(new Set(at.map((x) => x % 10_000)).size).toBe(members);
    }
  });

  test("bad arguments are refused", () => {
    expect(() => nextSnapshotIndex(0, 0, 0, 1)).toThrow(/count/);
    expect(() => nextSnapshotIndex(0, 10, 3, 3)).toThrow(/rank/);
    expect(() => nextSnapshotIndex(0, 10, -1, 3)).toThrow(/rank/);
    expect(() => nextSnapshotIndex(0, 10, 0, 0)).toThrow(/rank/);
  });
});

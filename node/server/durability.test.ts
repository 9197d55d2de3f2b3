// Durability: every acknowledged write survives a restart of the whole
// cluster (SIGTERM or kill -9); a torn write at the end of the WAL is cut off
// and reported; damage in the middle of the WAL stops the member from
// starting, naming the file and the offset.

import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import type { PutResult } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { call, exitWithin, get, json, keepLogs, listAll, logLines, memberId, postJson, put, putOk, readAt, walRecordOffsets, walSegments } from "./testing/client.ts";

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startedCluster("d");
});

afterAll(async () => {
  keepLogs(cluster, "durability");
  await cluster.destroy();
});

/** Writes that were acknowledged (2xx), by key. */
type Acked = Map<string, string>;

async function writeMany(prefix: string, n: number, acked: Acked): Promise<PutResult> {
  const leader = await cluster.waitLeader();
  const results: PutResult[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let k = w; k < n; k += 8) {
        const key = `${prefix}/${String(k).padStart(4, "0")}`;
        results.push(await putOk(cluster.members[k % 3] ?? leader, key, `v${k}`));
        acked.set(key, `v${k}`);
      }
    }),
  );
  return newest(results);
}

function newest(results: readonly PutResult[]): PutResult {
  const last = results.reduce<PutResult | undefined>((a, r) => (a === undefined || r.revision > a.revision ? r : a), undefined);
  if (last === undefined) throw new Error("nothing written");
  return last;
}

/** Every acknowledged write is visible (linearizably) on every member. */
async function expectAll(acked: Acked, prefix: string): Promise<void> {
  for (const m of cluster.running()) {
    const { kvs } = await listAll(m, `${prefix}/`);
    const got = new Map(kvs.map((kv) => [kv.key, kv.value]));
    const missing = [...acked].filter(([k, v]) => k.startsWith(`${prefix}/`) && got.get(k) !== v).map(([k]) => k);
    expect(missing, `${m.name} lost acknowledged writes`).toEqual([]);
  }
}

function stopped(m: Member): void {
  if (m.running) throw new Error(`${m.name} is still running`);
}

describe("restarting the whole cluster", () => {
  test("SIGTERM all members: each exits 0 and every acknowledged write is still there", async () => {
    const acked: Acked = new Map();
    await writeMany("term", 120, acked);
    const exits = await Promise.all(
      cluster.members.map((m) => {
        m.proc?.kill("SIGTERM");
        return exitWithin(m, 30_000);
      }),
    );
    for (const e of exits) expect(e.code).toBe(0);
    for (const m of cluster.members) cluster.restart(m);
    await cluster.waitLeader();
    await expectAll(acked, "term");
  });

  test("kill -9 all members in the middle of a write load: every acknowledged write is still there", async () => {
    const acked: Acked = new Map();
    await writeMany("kill/pre", 50, acked);
    const leader = await cluster.waitLeader();
    // Writers that keep going until the processes die under them.
    let stop = false;
    const writers = Array.from({ length: 6 }, async (_, w) => {
      for (let k = 0; !stop; k++) {
        const key = `kill/load/${w}/${k}`;
        try {
          const r = await put(cluster.members[(w + k) % 3] ?? leader, key, `v${k}`);
          if (r.status === 200 || r.status === 201) acked.set(key, `v${k}`);
        } catch {
          // The member died: this write is not acknowledged.
        }
      }
    });
    await eventually("some writes under load", () => Promise.resolve(acked.size >= 150 ? true : undefined));
    await Promise.all(cluster.members.map((m) => m.kill("SIGKILL")));
    stop = true;
    await Promise.all(writers);
    for (const m of cluster.members) stopped(m);

    for (const m of cluster.members) cluster.restart(m);
    await cluster.waitLeader();
    await expectAll(acked, "kill");
  });
});

describe("WAL damage", () => {
  test("a torn tail (garbage, or the last save cut short, written where the saves end) is repaired on restart", async () => {
    const acked: Acked = new Map();
    const leader = await cluster.waitLeader();
    const victim = cluster.running().find((m) => m !== leader);
    if (victim === undefined) throw new Error("no follower");

    for (const damage of ["append", "truncate"] as const) {
      const last = await writeMany(`torn-${damage}`, 40, acked);
      // The victim has applied (so persisted) everything before it stops.
      expect((await readAt(victim, `torn-${damage}/0039`, last.revision)).status).toBe(200);
      await victim.kill("SIGKILL");
      const segs = walSegments(victim);
      const seg = segs[segs.length - 1];
      if (seg === undefined) throw new Error("no WAL segment");
      // Where the saves end: the WAL keeps zeros after them, and an
      // unfinished save is written over those.
      const records = walRecordOffsets(seg);
      const lastRecord = records[records.length - 1];
      if (lastRecord === undefined) throw new Error("no records");
      const end = lastRecord.offset + 10 + lastRecord.length;
      let torn: Buffer;
      if (damage === "append") {
        // Half a record header and some payload: a save that never finished.
        torn = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x01, 0x00, 0x02, 0x01, 0x55, 0x55, 0x55]);
      } else {
        // A save that was being written when the process died: a copy of
        // the last save, cut off in the middle of its last record. (Cutting
        // into a save that was already fsynced would drop entries this
        // member acknowledged, which Raft does not allow for: the leader
        // never sends entries below a follower's match index again.)
        const firstOfSave = records.findLastIndex((r) => (r.flags & 1) !== 0);
        const start = records[firstOfSave];
        if (start === undefined) throw new Error("no records");
        const save = readFileSync(seg).subarray(start.offset);
        torn = save.subarray(0, lastRecord.offset - start.offset + 10 + Math.floor(lastRecord.length / 2));
      }
      const fd = openSync(seg, "r+");
      writeSync(fd, torn, 0, torn.byteLength, end);
      closeSync(fd);
      const repairsBefore = logLines(victim, "repaired a torn write").length;
      cluster.restart(victim);
      await cluster.waitLeader();

      const repairs = logLines(victim, "repaired a torn write");
      expect(repairs.length).toBe(repairsBefore + 1);
      const repair = repairs[repairs.length - 1];
      expect(repair?.["file"]).toBe(seg);
      expect(repair?.["droppedBytes"]).toBeGreaterThan(0);
      expect(repair?.["offset"]).toBe(end);
      expect(readFileSync(seg).byteLength).toBeGreaterThanOrEqual(end);
      expect(victim.running).toBe(true);

      // Everything acknowledged is there; the cut-off save came back from the leader.
      const after = await putOk(leader, `torn-${damage}/after`, "x");
      expect((await readAt(victim, `torn-${damage}/after`, after.revision)).text).toBe("x");
      await expectAll(acked, `torn-${damage}`);
    }
  });

  test("a corrupt record in the middle of a segment: the member refuses to start, naming the file and offset", async () => {
    const leader = await cluster.waitLeader();
    const victim = cluster.running().find((m) => m !== leader);
    if (victim === undefined) throw new Error("no follower");
    const acked: Acked = new Map();
    const last = await writeMany("corrupt", 120, acked);
    expect((await readAt(victim, "corrupt/0119", last.revision)).status).toBe(200);
    await victim.kill("SIGKILL");

    const segs = walSegments(victim);
    const seg = segs[segs.length - 1];
    if (seg === undefined) throw new Error("no WAL segment");
    const records = walRecordOffsets(seg);
    expect(records.length).toBeGreaterThan(30);
    // A record with a payload well before the end, with many intact saves after it.
    const target = records.slice(1, records.length - 20).reverse().find((r) => r.length >= 8);
    if (target === undefined) throw new Error("no record to damage");
    const original = readFileSync(seg);
    const damaged = Buffer.from(original);
    for (let k = 0; k < 4; k++) {
      const at = target.offset + 10 + Math.floor(target.length / 2) + k;
      if (at < target.offset + 10 + target.length) damaged[at] = (damaged[at] ?? 0) ^ 0xff;
    }
    writeFileSync(seg, damaged);

    const outputBefore = victim.output.length;
    cluster.restart(victim);
    const exit = await exitWithin(victim, 20_000);
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    const said = victim.output.slice(outputBefore);
    const line = said.split("\n").find((l) => l.startsWith("concord-node: "));
    expect(line, said).toBeDefined();
    expect(line).toContain(seg);
    expect(line).toContain(`offset ${target.offset}`);
    // Nothing was "repaired" away.
    expect(said).not.toContain("repaired a torn write");
    expect(readFileSync(seg).equals(damaged)).toBe(true);

    // With the bytes put back, the member starts and has everything.
    writeFileSync(seg, original);
    cluster.restart(victim);
    await cluster.waitLeader();
    expect((await readAt(victim, "corrupt/0119", last.revision)).text).toBe("v119");
    await expectAll(acked, "corrupt");
    expect((await get(victim, "corrupt/0000")).text).toBe("v0");
  });

  test("a member whose data directory was wiped refuses to start; removed and added again, it rejoins", async () => {
    const leader = await cluster.waitLeader();
    const victim = cluster.running().find((m) => m !== leader);
    if (victim === undefined) throw new Error("no follower");
    const acked: Acked = new Map();
    const last = await writeMany("wiped", 30, acked);
    const id = await memberId(cluster, victim);
    await victim.kill("SIGKILL");
    rmSync(victim.spec.dataDir, { recursive: true, force: true });

    // Starting empty with the bootstrap flags again would make it vote with
    // no memory of what it acknowledged: it refuses, and says what to do.
    const outputBefore = victim.output.length;
    cluster.restart(victim);
    const exit = await exitWithin(victim, 20_000);
    expect(exit.code).toBe(1);
    const line = victim.output.slice(outputBefore).split("\n").find((l) => l.startsWith("concord-node: "));
    expect(line).toContain("its data was lost");
    expect(line).toContain(`DELETE /v1/cluster/members/${id}`);

    const removed = await call(leader, `/v1/cluster/members/${id}`, { method: "DELETE" });
    expect(removed.status, removed.text).toBe(200);
    const added = await postJson(leader, "/v1/cluster/members", { name: victim.name, peerUrls: [victim.peerUrl] });
    expect(added.status, added.text).toBe(201);
    const newId = json<{ id: string }>(added).id;
    expect(newId).not.toBe(id);
    rmSync(victim.spec.dataDir, { recursive: true, force: true });
    const others = cluster.members.filter((m) => m !== victim);
    cluster.restart(victim, ["--initial-cluster", cluster.initialCluster(others), "--initial-cluster-state", "existing"]);
    await eventually("the re-added member to catch up", async () => {
      try {
        return (await readAt(victim, last.key, last.revision)).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    });
    const promoted = await eventually("promotion", async () => {
      const r = await call(leader, `/v1/cluster/members/${newId}/promote`, { method: "POST" });
      return r.status === 409 ? undefined : r;
    });
    expect(promoted.status, promoted.text).toBe(200);
    await cluster.waitLeader();
    await expectAll(acked, "wiped");
  });
});

// npm run bench:node: a 3-member local cluster of real concord-node
// processes on loopback (fsync on). Prints single-client write latency,
// 64-client write throughput, and the time to elect a new leader after
// kill -9 of the leader (median over 10 kills).

import { Agent, request } from "node:http";
import { parseArgs } from "node:util";
import { LocalCluster, eventually, sleep } from "../node/server/testing/cluster.ts";
import type { Member } from "../node/server/testing/cluster.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string", default: "10" },
    kills: { type: "string", default: "10" },
  },
});
const seconds = values.quick ? 3 : Number(values.seconds);
const kills = values.quick ? 3 : Number(values.kills);

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

function put(url: string, key: string, value: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(`/v1/kv/${encodeURIComponent(key)}`, url);
    const req = request(u, { method: "PUT", agent, headers: { "Content-Length": value.byteLength } }, (res) => {
      res.resume();
      res.on("end", () => {
        resolve(res.statusCode ?? 0);
      });
    });
    req.on("error", reject);
    req.end(value);
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;

async function main(): Promise<void> {
  const cluster = await LocalCluster.create({ size: 3, namePrefix: "bench" });
  try {
    cluster.start();
    const leader = await cluster.waitLeader();
    const value = Buffer.alloc(256, 120);
    process.stdout.write(`concord-node bench: 3 members on loopback, 256-byte values, node ${process.version}\n`);

    // Single client, sequential writes to the leader.
    const lat: number[] = [];
    const until1 = performance.now() + seconds * 1000;
    for (let k = 0; performance.now() < until1; k++) {
      const t = performance.now();
      const code = await put(leader.url, `single/${k % 1000}`, value);
      if (code >= 300) throw new Error(`write failed with ${code}`);
      lat.push(performance.now() - t);
    }
    lat.sort((a, b) => a - b);
    process.stdout.write(
      `single-client writes: ${lat.length} in ${seconds}s, p50 ${fmt(percentile(lat, 50))}, p99 ${fmt(percentile(lat, 99))}, mean ${fmt(lat.reduce((a, b) => a + b, 0) / lat.length)}\n`,
    );

    // 64 concurrent clients, spread over the members (followers forward to the leader).
    for (const target of ["leader", "all"] as const) {
      const members = target === "leader" ? [leader] : cluster.running();
      let ok = 0;
      let failed = 0;
      const lats: number[] = [];
      const until = performance.now() + seconds * 1000;
      await Promise.all(
        Array.from({ length: 64 }, async (_, c) => {
          const m = members[c % members.length] ?? leader;
          for (let k = 0; performance.now() < until; k++) {
            const t = performance.now();
            const code = await put(m.url, `c${c}/${k % 100}`, value);
            if (code < 300) {
              ok++;
              lats.push(performance.now() - t);
            } else failed++;
          }
        }),
      );
      lats.sort((a, b) => a - b);
      process.stdout.write(
        `64-client writes to ${target === "leader" ? "the leader" : "all members"}: ${Math.round(ok / seconds)} writes/s, p50 ${fmt(percentile(lats, 50))}, p99 ${fmt(percentile(lats, 99))}, failed ${failed}\n`,
      );
    }

    // Failover: kill -9 the leader under a light write load.
    const elections: number[] = [];
    const firstWrites: number[] = [];
    for (let trial = 0; trial < kills; trial++) {
      const old = await cluster.waitLeader();
      const others = cluster.running().filter((m) => m !== old);
      const t0 = performance.now();
      await old.kill("SIGKILL");
      const newLeader = await eventually(
        "a new leader",
        async () => {
          const sts = await Promise.all(others.map((m) => cluster.status(m)));
          const ids = new Set(sts.map((s) => s?.leader?.id ?? "none"));
          const lid = sts[0]?.leader?.id;
          return ids.size === 1 && lid !== undefined ? others.find((_, k) => sts[k]?.id === lid) : undefined;
        },
        10_000,
        2,
      );
      elections.push(performance.now() - t0);
      await eventually("a write to succeed", async () => ((await put(newLeader.url, "failover", value)) < 300 ? true : undefined), 10_000, 2);
      firstWrites.push(performance.now() - t0);
      cluster.restart(old);
      await waitCaughtUp(cluster, old);
      await sleep(200);
    }
    elections.sort((a, b) => a - b);
    firstWrites.sort((a, b) => a - b);
    process.stdout.write(
      `failover after kill -9 of the leader (${kills} kills, election timeout 100 ms): election median ${fmt(percentile(elections, 50))}, max ${fmt(elections[elections.length - 1] ?? Number.NaN)}; first acknowledged write median ${fmt(percentile(firstWrites, 50))}, max ${fmt(firstWrites[firstWrites.length - 1] ?? Number.NaN)}\n`,
    );
  } finally {
    agent.destroy();
    await cluster.destroy();
  }
}

async function waitCaughtUp(cluster: LocalCluster, m: Member): Promise<void> {
  await eventually("the restarted member to catch up", async () => {
    const leader = await cluster.waitLeader(10_000);
    const [a, b] = await Promise.all([cluster.status(leader), cluster.status(m)]);
    return a !== null && b !== null && b.leader !== null && b.appliedIndex >= a.commitIndex - 5 ? true : undefined;
  });
}

await main();

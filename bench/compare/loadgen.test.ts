// The load generator (a forked process) against a real 3-member Concord
// cluster: the warm-up by operations really sends them before the timed
// part, and the members' revision moves by exactly what both parts wrote.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Loadgen } from "./loadgen-client.ts";
import { ConcordSystem } from "./systems.ts";

let sys: ConcordSystem;
let loadgen: Loadgen;

beforeAll(async () => {
  // The test timing: at the 100 ms default a starved member can call an
  // election, and the failed writes it causes are not what this test checks.
  sys = await ConcordSystem.create({ electionMs: 500, heartbeatMs: 50 });
  await sys.start();
  await sys.settled();
  loadgen = new Loadgen();
});

afterAll(async () => {
  await loadgen.close();
  await sys.stop();
});

/** The store's revision after one more write (each write moves it by one). */
async function revisionAfterProbe(endpoint: string): Promise<number> {
  const res = await fetch(`${endpoint}/v1/kv/probe0001`, { method: "PUT", body: "x" });
  expect(res.ok).toBe(true);
  return ((await res.json()) as { revision: number }).revision;
}

describe("the load generator's warm-up", () => {
  it("sends at least warmupOps untimed writes before the timed part", async () => {
    const endpoint = sys.endpoints[0] ?? "";
    const before = await revisionAfterProbe(endpoint);
    const clients = 4;
    const r = await loadgen.run({ type: "throughput", system: "concord", op: "put", clients, warmupMs: 0, warmupOps: 300, durationMs: 300, endpoints: sys.endpoints, cpuPids: [] });
    const after = await revisionAfterProbe(endpoint);
    expect(r.failed).toBe(0);
    // Each client checks before it sends, so at most one more per other client.
    expect(r.warmup.ops).toBeGreaterThanOrEqual(300);
    expect(r.warmup.ops).toBeLessThan(300 + clients);
    expect(r.latencies.length).toBeGreaterThan(0);
    expect(after - before - 1).toBe(r.warmup.ops + r.latencies.length);
  });

  it("sends nothing untimed with neither a time nor a count", async () => {
    const endpoint = sys.endpoints[0] ?? "";
    const before = await revisionAfterProbe(endpoint);
    const r = await loadgen.run({ type: "throughput", system: "concord", op: "put", clients: 2, warmupMs: 0, warmupOps: 0, durationMs: 200, endpoints: sys.endpoints, cpuPids: [] });
    const after = await revisionAfterProbe(endpoint);
    expect(r.failed).toBe(0);
    expect(r.warmup.ops).toBe(0);
    expect(after - before - 1).toBe(r.latencies.length);
  });
});

// One chaos run: a real cluster behind the peer fault layer, a concurrent
// workload, faults chosen by the seed, then heal, and the checkers'
// verdicts on the recorded history.

import { rmSync } from "node:fs";
import { LocalCluster, eventually, sleep } from "../node/server/testing/cluster.ts";
import type { Member } from "../node/server/testing/cluster.ts";
import { SeededRng } from "../node/raft/rng.ts";
import { checkHistory } from "./linearizability/checker.ts";
import { kvModel } from "./linearizability/kv-model.ts";
import { formatResult } from "./linearizability/report.ts";
import { checkSerializableReads, formatStaleReadViolation } from "./linearizability/serializable.ts";
import { FaultNetwork } from "./netfault/index.ts";
import type { WatchEvent } from "./watchers.ts";
import { Watcher, readSse } from "./watchers.ts";
import { Workload } from "./workload.ts";

export type FaultKind = "kill" | "pause" | "partition" | "delay" | "restartAll" | "membership";
export const faultKinds: readonly FaultKind[] = ["kill", "pause", "partition", "delay", "restartAll", "membership"];

export interface ChaosOptions {
  readonly seed: number;
  readonly durationMs: number;
  readonly nodes: number;
  readonly faults: ReadonlySet<FaultKind>;
  /** Extra flags for every member (a planted bug, timing). */
  readonly memberArgs?: readonly string[];
  readonly log?: (line: string) => void;
}

export type Verdict = "ok" | "violation" | "unknown";

export interface CheckVerdict {
  readonly checker: string;
  readonly verdict: Verdict;
  readonly detail: string;
}

export interface ChaosReport {
  readonly seed: number;
  readonly operations: { readonly total: number; readonly indeterminate: number; readonly byType: Record<string, number>; readonly serializableReads: number; readonly other: number };
  readonly faults: readonly string[];
  readonly verdicts: readonly CheckVerdict[];
  readonly ok: boolean;
  readonly history: unknown;
  readonly logs: Record<string, string>;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const say = o.log ?? (() => undefined);
  const rng = new SeededRng(o.seed);
  const cluster = await LocalCluster.create({
    size: o.nodes,
    namePrefix: "c",
    proxied: true,
    // Snapshots every 2,000 entries (the default is 100,000), so that runs of
    // seconds take snapshots, compact the log and catch members up by snapshot.
    args: ["--auto-compaction-retention", "0", "--request-timeout-ms", "3000", "--snapshot-count", "2000", "--snapshot-catchup-entries", "500", ...(o.memberArgs ?? [])],
  });
  const net = new FaultNetwork({ seed: o.seed });
  for (const m of cluster.members) net.addMember(m.name, { advertisedPort: m.spec.peerPort, targetPort: m.spec.listenPeerPort ?? 0 });
  const started = await net.start();
  if (!started.ok) throw new Error(`fault network: ${started.error.message}`);
  const faults: string[] = [];
  const t0 = performance.now();
  const note = (s: string): void => {
    const line = `${((performance.now() - t0) / 1000).toFixed(1)}s ${s}`;
    faults.push(line);
    say(`fault: ${line}`);
  };
  const paused = new Set<Member>();
  const down = new Set<Member>();
  try {
    cluster.start();
    await cluster.waitLeader(30_000);
    const generation = new Map<string, number>();
    const bump = (m: Member): void => {
      generation.set(m.name, (generation.get(m.name) ?? 0) + 1);
    };
    const targets = (): { name: string; url: string; generation: number }[] =>
      cluster.members.map((m) => ({ name: m.name, url: m.url, generation: generation.get(m.name) ?? 0 }));
    const workload = new Workload(
      { seed: o.seed, clientsPerMember: 2, clusterClients: 2, keys: 16, requestTimeoutMs: 3000, thinkMs: 20 },
      targets,
    );
    const watchers = cluster.members.map((m, k) => {
      const others = cluster.members.filter((x) => x !== m);
      return new Watcher(`w${k}@${m.name}`, "chaos/", () => [m.url, ...others.map((x) => x.url)]);
    });
    for (const w of watchers) w.start(1);
    workload.start();

    const end = performance.now() + o.durationMs;
    const kinds = [...o.faults];
    while (performance.now() < end && kinds.length > 0) {
      await sleep(1000 + rng.int(2000));
      if (performance.now() >= end) break;
      const kind = rng.pick(kinds);
      const leader = await cluster.waitLeader(5000).catch(() => null);
      const victim = leader !== null && rng.chance(0.5) ? leader : rng.pick(cluster.members);
      switch (kind) {
        case "kill": {
          if (!victim.running) break;
          note(`kill -9 ${victim.name}${victim === leader ? " (leader)" : ""}`);
          bump(victim);
          await victim.kill("SIGKILL");
          down.add(victim);
          await sleep(500 + rng.int(2000));
          cluster.restart(victim);
          bump(victim);
          down.delete(victim);
          note(`restart ${victim.name}`);
          break;
        }
        case "pause": {
          if (!victim.running) break;
          note(`SIGSTOP ${victim.name}${victim === leader ? " (leader)" : ""}`);
          victim.pause();
          paused.add(victim);
          await sleep(500 + rng.int(2500));
          victim.resume();
          paused.delete(victim);
          note(`SIGCONT ${victim.name}`);
          break;
        }
        case "partition": {
          const shape = rng.pick(["isolate", "split", "oneWay"] as const);
          if (shape === "isolate") {
            net.isolate(victim.name);
            note(`isolate ${victim.name}${victim === leader ? " (leader)" : ""}`);
          } else if (shape === "split") {
            const names = cluster.members.map((m) => m.name);
            const minority = names.filter(() => rng.chance(0.4)).slice(0, Math.floor((names.length - 1) / 2));
            if (minority.length === 0) break;
            net.partition([minority, names.filter((n) => !minority.includes(n))]);
            note(`partition [${minority.join(",")}] from the rest`);
          } else {
            const other = rng.pick(cluster.members.filter((m) => m !== victim));
            net.cutOneWay(victim.name, other.name);
            note(`cut ${victim.name} -> ${other.name} one way`);
          }
          await sleep(1000 + rng.int(3000));
          net.heal();
          note("heal network");
          break;
        }
        case "delay": {
          for (const a of cluster.members) for (const b of cluster.members) if (a !== b) net.delay(a.name, b.name, { ms: 20 + rng.int(60), jitterMs: 20 });
          note("delay every peer link by 20-80 ms with jitter");
          await sleep(1000 + rng.int(3000));
          net.heal();
          note("heal network");
          break;
        }
        case "membership": {
          // Replace a follower: remove it, wipe its data, add it back as a
          // learner, let it catch up, promote it. Faults may overlap it.
          if (leader === null) break;
          const x = rng.pick(cluster.members.filter((m) => m !== leader && m.running));
          const st = await cluster.status(leader);
          const id = st?.members.find((mm) => mm.name === x.name)?.id;
          if (id === undefined) break;
          const removed = await fetch(`${leader.url}/v1/cluster/members/${id}`, { method: "DELETE", signal: AbortSignal.timeout(10_000) }).catch(() => null);
          note(`remove member ${x.name}: ${removed?.status ?? "no answer"}`);
          if (removed?.status !== 200) break;
          bump(x);
          await x.kill("SIGKILL");
          rmSync(x.spec.dataDir, { recursive: true, force: true });
          const added = await fetch(`${leader.url}/v1/cluster/members`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ name: x.name, peerUrls: [x.peerUrl] }),
            signal: AbortSignal.timeout(10_000),
          }).catch(() => null);
          note(`add ${x.name} back as a learner with an empty data directory: ${added?.status ?? "no answer"}`);
          if (added?.status !== 201) break;
          const newId = ((await added.json()) as { id: string }).id;
          const others = cluster.members.filter((m) => m !== x);
          cluster.restart(x, ["--initial-cluster", cluster.initialCluster(others), "--initial-cluster-state", "existing"]);
          bump(x);
          const promoted = await eventually(
            "the learner to be promoted",
            async () => {
              const l = await cluster.waitLeader(5000).catch(() => null);
              if (l === null) return undefined;
              const r = await fetch(`${l.url}/v1/cluster/members/${newId}/promote`, { method: "POST", signal: AbortSignal.timeout(10_000) }).catch(() => null);
              return r !== null && (r.status === 200 || r.status === 409 && (await r.text()).includes("AlreadyVoter")) ? r.status : undefined;
            },
            30_000,
            200,
          ).catch(() => null);
          note(`promote ${x.name}: ${promoted ?? "not promoted"}`);
          break;
        }
        case "restartAll": {
          note("kill -9 every member");
          for (const m of cluster.members) bump(m);
          await Promise.all(cluster.members.filter((m) => m.running).map((m) => m.kill("SIGKILL")));
          await sleep(300 + rng.int(1000));
          for (const m of cluster.members) {
            cluster.restart(m);
            bump(m);
          }
          note("restart every member");
          break;
        }
      }
    }

    // Heal everything and let the cluster converge.
    net.heal();
    for (const m of paused) m.resume();
    for (const m of cluster.members) {
      if (!m.running) {
        cluster.restart(m);
        bump(m);
      }
    }
    note("final heal");
    // Waits up to 30 s for a leader; if none comes, the check below reports it.
    await cluster.waitLeader(30_000).catch(() => null);
    await workload.stop();
    const converged = await eventually(
      "a leader that every member follows, and every member to apply its commit index",
      async () => {
        const leader = await cluster.waitLeader(2000).catch(() => null);
        if (leader === null) return undefined;
        const ls = await cluster.status(leader);
        if (ls === null) return undefined;
        const sts = await Promise.all(cluster.members.map((m) => cluster.status(m)));
        return sts.every((s) => s !== null && s.appliedIndex >= ls.commitIndex) ? ls : undefined;
      },
      30_000,
    ).catch(async (e: unknown) => {
      // Liveness: after healing, the cluster must converge. Report it as a
      // verdict, with every member's view, rather than abort the run.
      const sts = await Promise.all(cluster.members.map(async (m) => `${m.name}: ${JSON.stringify(await cluster.status(m))}`));
      return { failed: `${e instanceof Error ? e.message : String(e)}\n${sts.join("\n")}` };
    });
    const memberLogs = (): Record<string, string> => Object.fromEntries(cluster.members.map((m) => [m.name, m.output]));
    // A cluster that does not converge, or cannot serve the final reads, fails
    // liveness; the safety checkers need a converged history and do not run.
    const livenessFailure = (detail: string): ChaosReport => ({
      seed: o.seed,
      operations: { total: workload.rec.history.length, indeterminate: 0, byType: {}, serializableReads: workload.rec.serializable.length, other: 0 },
      faults,
      verdicts: [{ checker: "liveness", verdict: "violation", detail }],
      ok: false,
      history: { operations: workload.rec.history, faults: net.report() },
      logs: memberLogs(),
    });
    if ("failed" in converged) {
      for (const w of watchers) await w.stop();
      return livenessFailure(converged.failed);
    }
    const finalStatus = converged;
    await sleep(1500);
    for (const w of watchers) await w.stop();

    // The reference: the full event history of the chaos keys, and the final
    // state, read from whichever member leads now. A cluster that cannot serve
    // them for 30 s after converging is a liveness failure, not a harness crash.
    const final = await readFinal(cluster, finalStatus.revision);
    if ("failed" in final) return livenessFailure(final.failed);
    const { reference, finalState } = final;

    const verdicts: CheckVerdict[] = [];
    const lin = checkHistory(kvModel, workload.rec.history, { budget: { maxSteps: 20_000_000, timeoutMs: 20_000 } });
    verdicts.push({ checker: "linearizability", verdict: lin.verdict, detail: lin.verdict === "ok" ? `${lin.partitions.length} keys` : formatResult(kvModel, lin) });
    const ser = checkSerializableReads(workload.rec.history, workload.rec.serializable);
    verdicts.push({
      checker: "serializable reads",
      verdict: ser.verdict,
      detail: ser.verdict === "ok" ? `${ser.reads} reads` : ser.violations.slice(0, 5).map(formatStaleReadViolation).join("\n"),
    });
    verdicts.push(checkWatches(watchers.map((w) => w.stream), reference));
    verdicts.push(checkDurability(workload.rec.acked, reference, finalState));

    const byType: Record<string, number> = {};
    let indeterminate = 0;
    for (const op of workload.rec.history) {
      const t = op.input.type === "put" && (op.input.ifMatch !== undefined || op.input.ifNoneMatch === true) ? "cas" : op.input.type;
      byType[t] = (byType[t] ?? 0) + 1;
      if (op.completion.type === "indeterminate") indeterminate++;
    }
    return {
      seed: o.seed,
      operations: {
        total: workload.rec.history.length,
        indeterminate,
        byType,
        serializableReads: workload.rec.serializable.length,
        other: workload.rec.other.ok + workload.rec.other.failed,
      },
      faults,
      verdicts,
      ok: verdicts.every((v) => v.verdict === "ok"),
      history: { operations: workload.rec.history, serializable: workload.rec.serializable, watches: watchers.map((w) => w.stream), reference, faults: net.report() },
      logs: memberLogs(),
    };
  } finally {
    for (const m of paused) m.resume();
    await cluster.destroy();
    await net.stop();
  }
}

async function readFinal(
  cluster: LocalCluster,
  revision: number,
): Promise<{ reference: WatchEvent[]; finalState: Map<string, { value: string; modRevision: number }> } | { failed: string }> {
  const deadline = Date.now() + 30_000;
  let last = "";
  while (Date.now() < deadline) {
    const leader = await cluster.waitLeader(5000).catch(() => null);
    if (leader === null) {
      last = "no leader";
      continue;
    }
    const reference = await referenceEvents(leader.url, revision);
    if (reference === null) {
      last = `the watch from ${leader.name} ended before revision ${revision}`;
      await sleep(200);
      continue;
    }
    const finalState = await finalKeys(leader.url);
    if (typeof finalState === "string") {
      last = `listing the keys on ${leader.name}: ${finalState}`;
      await sleep(200);
      continue;
    }
    return { reference, finalState };
  }
  return { failed: `could not read the final history and state within 30 s after convergence: ${last}` };
}

/** Every chaos-key event up to `upTo`, or null when the stream ended before it. */
async function referenceEvents(url: string, upTo: number): Promise<WatchEvent[] | null> {
  const out: WatchEvent[] = [];
  const abort = new AbortController();
  const progress = { reached: false };
  const reading = readSse(
    `${url}/v1/watch?key=chaos%2F&prefix=true&fromRevision=1&progressMs=200`,
    null,
    abort.signal,
    (e) => out.push(e),
    () => { abort.abort(); },
    (id) => {
      if (id !== null && id >= upTo) {
        progress.reached = true;
        abort.abort();
      }
    },
  ).catch(() => undefined);
  const timer = setTimeout(() => {
    abort.abort();
  }, 10_000);
  await reading;
  clearTimeout(timer);
  return progress.reached ? out : null;
}

/** The final chaos keys, or why they could not be listed. */
async function finalKeys(url: string): Promise<Map<string, { value: string; modRevision: number }> | string> {
  try {
    const r = await fetch(`${url}/v1/kv?prefix=chaos%2F&limit=10000`, { signal: AbortSignal.timeout(10_000) });
    const text = await r.text();
    if (!r.ok) return `${r.status} ${text.slice(0, 200)}`;
    const body = JSON.parse(text) as { kvs: { key: string; value?: string; modRevision: number }[] };
    return new Map(body.kvs.map((kv) => [kv.key, { value: kv.value ?? "", modRevision: kv.modRevision }]));
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Every watch stream is in revision order with no duplicates, and is a
 * contiguous slice of the reference history (no gaps, across resumes too).
 */
export function checkWatches(streams: readonly { watcher: string; events: readonly WatchEvent[]; reconnects: number }[], reference: readonly WatchEvent[]): CheckVerdict {
  const key = (e: WatchEvent): string => `${e.revision}/${e.key}/${e.type}/${e.modRevision}/${e.value}`;
  const refIndex = new Map(reference.map((e, k) => [key(e), k]));
  const problems: string[] = [];
  let events = 0;
  let reconnects = 0;
  for (const s of streams) {
    events += s.events.length;
    reconnects += s.reconnects;
    let prev = -1;
    for (const [k, e] of s.events.entries()) {
      const at = refIndex.get(key(e));
      if (at === undefined) {
        problems.push(`${s.watcher}: event ${key(e)} is not in the history`);
        break;
      }
      if (prev >= 0 && at !== prev + 1) {
        const before = reference[prev];
        problems.push(`${s.watcher}: event ${k} (${key(e)}) follows ${before === undefined ? "?" : key(before)}: ${at <= prev ? "a repeat or reordering" : `${at - prev - 1} events missing`}`);
        break;
      }
      prev = at;
    }
  }
  return {
    checker: "watches",
    verdict: problems.length === 0 ? "ok" : "violation",
    detail: problems.length === 0 ? `${streams.length} watchers, ${events} events, ${reconnects} resumes, ${reference.length} in the history` : problems.join("\n"),
  };
}

/**
 * Every acknowledged write is in the history, and the final state agrees
 * with the history: each key's final value is its last event's, and every
 * acknowledged write is present or superseded by a later event.
 */
export function checkDurability(
  acked: ReadonlyMap<string, readonly { value: string; modRevision: number }[]>,
  reference: readonly WatchEvent[],
  finalState: ReadonlyMap<string, { value: string; modRevision: number }>,
): CheckVerdict {
  const problems: string[] = [];
  const puts = new Map<string, WatchEvent>();
  const last = new Map<string, WatchEvent>();
  for (const e of reference) {
    if (e.type === "put") puts.set(`${e.key}@${e.modRevision}`, e);
    last.set(e.key, e);
  }
  let count = 0;
  for (const [k, writes] of acked) {
    for (const w of writes) {
      count++;
      const e = puts.get(`${k}@${w.modRevision}`);
      if (e === undefined || e.value !== w.value) problems.push(`acknowledged write ${k}=${w.value} at ${w.modRevision} is missing from the history`);
    }
  }
  for (const [k, e] of last) {
    const f = finalState.get(k);
    if (e.type === "delete" && f !== undefined) problems.push(`${k} was last deleted at ${e.revision} but exists with mod revision ${f.modRevision}`);
    if (e.type === "put" && (f === undefined || f.modRevision !== e.modRevision || f.value !== e.value)) {
      problems.push(`${k}: the history ends with ${e.value}@${e.modRevision}, the store has ${f === undefined ? "nothing" : `${f.value}@${f.modRevision}`}`);
    }
  }
  for (const k of finalState.keys()) if (!last.has(k)) problems.push(`${k} exists but has no event in the history`);
  return {
    checker: "durability",
    verdict: problems.length === 0 ? "ok" : "violation",
    detail: problems.length === 0 ? `${count} acknowledged writes, ${finalState.size} keys at the end` : problems.slice(0, 20).join("\n"),
  };
}

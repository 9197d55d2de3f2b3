// The clusters under test as real processes on loopback: Concord through
// LocalCluster, etcd as three `etcd` processes. Both fsync (neither has it
// turned off) and keep their data under the same temporary directory.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { LocalCluster, eventually, freePort, sleep } from "../../node/server/testing/cluster.ts";
import type { SystemKind } from "./jobs.ts";

export interface Timing {
  readonly electionMs: number;
  readonly heartbeatMs: number;
}

/** What the orchestrator needs of a running 3-member cluster, whichever system it is. */
export interface SystemCluster {
  readonly kind: SystemKind;
  readonly label: string;
  readonly endpoints: readonly string[];
  start(): Promise<void>;
  /** The agreed leader's index into endpoints and its term, or null while there is none. */
  leader(): Promise<{ index: number; term: number } | null>;
  pid(index: number): number | null;
  /** Waits for the member's process to exit (after the load generator killed it) and starts it again on its data. */
  restartAfterKill(index: number): Promise<void>;
  /** Waits until all members agree on a leader and each has applied to near its commit index. */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] === undefined ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** What a profile adds to the members: environment, node flags, a chattier log. */
export interface ConcordExtra {
  readonly env?: Readonly<Record<string, string>>;
  readonly nodeFlags?: readonly string[];
  readonly logLevel?: "warn" | "info";
}

export class ConcordSystem implements SystemCluster {
  readonly kind = "concord" as const;
  readonly label: string;
  private readonly cluster: LocalCluster;

  private constructor(cluster: LocalCluster, timing: Timing) {
    this.cluster = cluster;
    this.label = `Concord ${timing.electionMs}/${timing.heartbeatMs}`;
  }

  static async create(timing: Timing, extra: ConcordExtra = {}): Promise<ConcordSystem> {
    const cluster = await LocalCluster.create({
      size: 3,
      namePrefix: "concord",
      args: ["--election-timeout-ms", String(timing.electionMs), "--heartbeat-interval-ms", String(timing.heartbeatMs), "--log-level", extra.logLevel ?? "warn"],
      env: extra.env ?? {},
      nodeFlags: extra.nodeFlags ?? [],
    });
    return new ConcordSystem(cluster, timing);
  }

  get dataRoot(): string {
    return this.cluster.dir;
  }

  get endpoints(): readonly string[] {
    return this.cluster.members.map((m) => m.url);
  }

  async start(): Promise<void> {
    this.cluster.start();
    await this.cluster.waitLeader(30_000);
  }

  async leader(): Promise<{ index: number; term: number } | null> {
    const sts = await Promise.all(this.cluster.members.map((m) => (m.running ? this.cluster.status(m) : Promise.resolve(null))));
    const live = sts.filter((s) => s !== null);
    const lid = live[0]?.leader?.id;
    if (lid === undefined || live.some((s) => s.leader?.id !== lid)) return null;
    const index = sts.findIndex((s) => s?.id === lid);
    return index < 0 ? null : { index, term: Math.max(...live.map((s) => s.term)) };
  }

  pid(index: number): number | null {
    return this.cluster.members[index]?.proc?.pid ?? null;
  }

  /** What a member printed (its log, and V8's traces when asked for). */
  output(index: number): string {
    return this.cluster.members[index]?.output ?? "";
  }

  async restartAfterKill(index: number): Promise<void> {
    const m = this.cluster.members[index];
    if (m === undefined) throw new Error(`no member ${index}`);
    await m.exited();
    this.cluster.restart(m);
  }

  async settled(timeoutMs = 30_000): Promise<void> {
    await eventually(
      "Concord members to agree on a leader and catch up",
      async () => {
        const sts = await Promise.all(this.cluster.members.map((m) => this.cluster.status(m)));
        const lid = sts[0]?.leader?.id;
        const commit = Math.max(...sts.map((s) => s?.commitIndex ?? 0));
        return lid !== undefined && sts.every((s) => s !== null && s.leader?.id === lid && s.appliedIndex >= commit - 5) ? true : undefined;
      },
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await this.cluster.destroy();
  }
}

interface EtcdStatus {
  readonly memberId: string;
  readonly leader: string;
  readonly term: number;
  readonly index: number;
}

/** etcd's grpc-gateway JSON status (the orchestrator polls it without a gRPC client). */
async function etcdStatus(endpoint: string): Promise<EtcdStatus | null> {
  try {
    const r = await fetch(`${endpoint}/v3/maintenance/status`, { method: "POST", body: "{}", signal: AbortSignal.timeout(1000) });
    if (!r.ok) return null;
    const j = (await r.json()) as { header?: { member_id?: string }; leader?: string; raftTerm?: string; raftIndex?: string };
    if (j.header?.member_id === undefined || j.leader === undefined) return null;
    return { memberId: j.header.member_id, leader: j.leader, term: Number(j.raftTerm ?? 0), index: Number(j.raftIndex ?? 0) };
  } catch {
    return null;
  }
}

interface EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  proc: ChildProcess | null;
  output: string;
}

export class EtcdSystem implements SystemCluster {
  readonly kind = "etcd" as const;
  readonly label: string;
  private readonly binary: string;
  private readonly timing: Timing;
  private readonly members: EtcdMember[];
  private readonly token: string;

  private constructor(binary: string, timing: Timing, members: EtcdMember[]) {
    this.binary = binary;
    this.timing = timing;
    this.members = members;
    this.label = `etcd ${timing.electionMs}/${timing.heartbeatMs}`;
    this.token = `bench-${process.pid}-${Date.now()}`;
  }

  static async create(binary: string, timing: Timing, dataRoot: string): Promise<EtcdSystem> {
    const members: EtcdMember[] = [];
    for (let k = 1; k <= 3; k++) {
      const dataDir = join(dataRoot, `etcd-${timing.electionMs}-${k}`);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      members.push({ name: `etcd${k}`, clientPort: await freePort(), peerPort: await freePort(), dataDir, proc: null, output: "" });
    }
    return new EtcdSystem(binary, timing, members);
  }

  get endpoints(): readonly string[] {
    return this.members.map((m) => `http://127.0.0.1:${m.clientPort}`);
  }

  private launch(m: EtcdMember): void {
    const initialCluster = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(",");
    // On a restart etcd ignores the bootstrap flags and resumes from its data dir.
    const proc = spawn(
      this.binary,
      [
        "--name", m.name,
        "--data-dir", m.dataDir,
        "--listen-client-urls", `http://127.0.0.1:${m.clientPort}`,
        "--advertise-client-urls", `http://127.0.0.1:${m.clientPort}`,
        "--listen-peer-urls", `http://127.0.0.1:${m.peerPort}`,
        "--initial-advertise-peer-urls", `http://127.0.0.1:${m.peerPort}`,
        "--initial-cluster", initialCluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", this.token,
        "--election-timeout", String(this.timing.electionMs),
        "--heartbeat-interval", String(this.timing.heartbeatMs),
        "--log-level", "warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    m.proc = proc;
    const collect = (c: Buffer): void => {
      m.output = (m.output + c.toString("utf8")).slice(-200_000);
    };
    proc.stdout.on("data", collect);
    proc.stderr.on("data", collect);
    proc.on("exit", () => {
      if (m.proc === proc) m.proc = null;
    });
  }

  async start(): Promise<void> {
    for (const m of this.members) this.launch(m);
    try {
      await this.settled(30_000);
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${this.members.map((m) => `${m.name}: ${m.output.slice(-2000)}`).join("\n")}`, { cause: e });
    }
  }

  async leader(): Promise<{ index: number; term: number } | null> {
    const sts = await Promise.all(this.members.map((m, k) => (m.proc === null ? Promise.resolve(null) : etcdStatus(this.endpoints[k] ?? ""))));
    const live = sts.filter((s) => s !== null);
    const lid = live[0]?.leader;
    if (lid === undefined || lid === "0" || live.some((s) => s.leader !== lid)) return null;
    const index = sts.findIndex((s) => s?.memberId === lid);
    return index < 0 ? null : { index, term: Math.max(...live.map((s) => s.term)) };
  }

  pid(index: number): number | null {
    return this.members[index]?.proc?.pid ?? null;
  }

  async restartAfterKill(index: number): Promise<void> {
    const m = this.members[index];
    if (m === undefined) throw new Error(`no member ${index}`);
    await eventually("the killed etcd member to exit", () => Promise.resolve(m.proc === null ? true : undefined), 10_000, 5);
    this.launch(m);
  }

  async settled(timeoutMs = 30_000): Promise<void> {
    await eventually(
      "etcd members to agree on a leader and catch up",
      async () => {
        const sts = await Promise.all(this.endpoints.map((e) => etcdStatus(e)));
        const lid = sts[0]?.leader;
        const top = Math.max(...sts.map((s) => s?.index ?? 0));
        return lid !== undefined && lid !== "0" && sts.every((s) => s !== null && s.leader === lid && s.index >= top - 5) ? true : undefined;
      },
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        const p = m.proc;
        if (p === null) return;
        // Teardown only (the data is thrown away): a SIGTERM'd etcd leader tries
        // to hand off leadership to peers that are stopping too, which takes seconds.
        const exited = new Promise((r) => p.once("exit", r));
        p.kill("SIGKILL");
        await exited;
      }),
    );
    await sleep(100);
  }
}

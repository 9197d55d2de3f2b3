// A local cluster of real concord-node processes on loopback, for tests and
// benchmarks. Every member gets free ports and its own data directory.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeRuntimeFlags } from "../../../bin/runtime-flags.ts";
import { urlHost } from "../../transport/index.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const mainScript = join(root, "node", "main.ts");

/**
 * The first port of the kernel's ephemeral range (outgoing connections take
 * their source ports from it), from /proc on Linux; 32768 elsewhere.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 2048 ? low : 32768;
  } catch {
    return 32768;
  }
}

const portCeiling = ephemeralLow();
/** 10,000, or lower when the ephemeral range starts below 20,000. */
const portFloor = Math.min(10_000, Math.floor(portCeiling / 2));
/**
 * Where this process looks next: a walk through [portFloor, portCeiling) that
 * starts at a point derived from the pid, so that parallel test workers start
 * apart, and never hands out the same port twice in one process.
 */
let nextCandidate = portFloor + ((process.pid * 7919) % (portCeiling - portFloor));

function listenOnce(port: number, host: string): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => {
      res(false);
    });
    s.listen(port, host, () => {
      s.close(() => {
        res(true);
      });
    });
  });
}

/**
 * A port that was free a moment ago, below the ephemeral range: a port the
 * kernel picked with listen(0) comes from that range, where any outgoing
 * connection may take it as its source port before the member binds it
 * (the suite saw EADDRINUSE at member start that way).
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = nextCandidate;
    nextCandidate = nextCandidate + 1 >= portCeiling ? portFloor : nextCandidate + 1;
    if (await listenOnce(port, host)) return port;
  }
  throw new Error(`no free port found in [${portFloor}, ${portCeiling})`);
}

export interface MemberSpec {
  readonly name: string;
  readonly clientPort: number;
  /** The peer port other members dial (the advertised one). */
  readonly peerPort: number;
  /** Where the member really listens for peers, when a proxy sits at peerPort (chaos tests). */
  readonly listenPeerPort?: number;
  readonly dataDir: string;
  /** The loopback address in URL form: 127.0.0.1 or [::1]. */
  readonly host: string;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class Member {
  readonly spec: MemberSpec;
  proc: ChildProcess | null = null;
  /** Everything the process wrote, across restarts. */
  output = "";
  private exitWaiters: ((e: ExitInfo) => void)[] = [];
  lastExit: ExitInfo | null = null;

  constructor(spec: MemberSpec) {
    this.spec = spec;
  }

  get name(): string {
    return this.spec.name;
  }

  get url(): string {
    return `http://${this.spec.host}:${this.spec.clientPort}`;
  }

  get peerUrl(): string {
    return `http://${this.spec.host}:${this.spec.peerPort}`;
  }

  get running(): boolean {
    return this.proc !== null;
  }

  start(args: readonly string[], env: Readonly<Record<string, string>> = {}, nodeFlags: readonly string[] = []): void {
    if (this.proc !== null) throw new Error(`${this.name} is already running`);
    const proc = spawn(
      process.execPath,
      [
        ...nodeRuntimeFlags,
        ...nodeFlags,
        mainScript,
        "--name", this.name,
        "--data-dir", this.spec.dataDir,
        "--listen-client-urls", this.url,
        "--listen-peer-urls", `http://${this.spec.host}:${this.spec.listenPeerPort ?? this.spec.peerPort}`,
        "--initial-advertise-peer-urls", this.peerUrl,
        "--log-level", "info",
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } },
    );
    this.proc = proc;
    this.lastExit = null;
    const collect = (chunk: Buffer): void => {
      this.output += chunk.toString("utf8");
      // Bound memory for long runs.
      if (this.output.length > 16_000_000) this.output = this.output.slice(-8_000_000);
    };
    proc.stdout.on("data", collect);
    proc.stderr.on("data", collect);
    proc.on("exit", (code, signal) => {
      if (this.proc === proc) this.proc = null;
      // A member that fails on its own (not stopped by a signal) says why in
      // the test output, so that a failure seen once in CI can be read there.
      if (signal === null && code !== 0) {
        const tail = this.output.split("\n").slice(-40).join("\n");
        process.stderr.write(`member ${this.name} exited with code ${String(code)}; its last output:\n${tail}\n`);
      }
      const info = { code, signal };
      this.lastExit = info;
      const ws = this.exitWaiters;
      this.exitWaiters = [];
      for (const w of ws) w(info);
    });
  }

  /** Resolves when the process exits (at once if it is not running). */
  exited(): Promise<ExitInfo> {
    if (this.proc === null) return Promise.resolve(this.lastExit ?? { code: null, signal: null });
    return new Promise((r) => this.exitWaiters.push(r));
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ExitInfo> {
    const done = this.exited();
    this.proc?.kill(signal);
    return done;
  }

  pause(): void {
    this.proc?.kill("SIGSTOP");
  }

  resume(): void {
    this.proc?.kill("SIGCONT");
  }
}

export interface ClusterOptions {
  readonly size: number;
  /** Extra flags for every member. */
  readonly args?: readonly string[];
  readonly namePrefix?: string;
  /** Give each member a separate real peer port, so that a proxy can sit at the advertised one. */
  readonly proxied?: boolean;
  /** Extra environment for every member's process (e.g. NODE_OPTIONS for a profile). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra flags for every member's node (V8 flags such as --trace-gc, which NODE_OPTIONS refuses). */
  readonly nodeFlags?: readonly string[];
  /** The loopback address in URL form for every member's URLs: 127.0.0.1 (the default) or [::1]. */
  readonly host?: string;
}

export interface Status {
  name: string;
  id: string;
  role: string;
  leader: { id: string; name: string | null } | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  revision: number;
  members: { id: string; name: string; role: string; voter: boolean; matchIndex?: number | null; lag?: number | null }[];
}

export class LocalCluster {
  readonly dir: string;
  readonly members: Member[] = [];
  private readonly args: readonly string[];
  private readonly prefix: string;
  private readonly proxied: boolean;
  private readonly env: Readonly<Record<string, string>>;
  private readonly nodeFlags: readonly string[];
  /** The members' host in URL form, and as listen() takes it (no brackets). */
  private readonly host: string;
  private readonly bareHost: string;

  private constructor(dir: string, o: ClusterOptions) {
    this.dir = dir;
    this.args = o.args ?? [];
    this.prefix = o.namePrefix ?? "m";
    this.proxied = o.proxied ?? false;
    this.env = o.env ?? {};
    this.nodeFlags = o.nodeFlags ?? [];
    this.host = o.host ?? "127.0.0.1";
    this.bareHost = urlHost(new URL(`http://${this.host}`));
  }

  /** Creates the members' specs; call start() to run them. */
  static async create(o: ClusterOptions): Promise<LocalCluster> {
    const c = new LocalCluster(mkdtempSync(join(tmpdir(), "concord-test-")), o);
    for (let k = 0; k < o.size; k++) await c.addSpec();
    return c;
  }

  async addSpec(): Promise<Member> {
    const name = `${this.prefix}${this.members.length + 1}`;
    const m = new Member({
      name,
      clientPort: await freePort(this.bareHost),
      peerPort: await freePort(this.bareHost),
      ...(this.proxied ? { listenPeerPort: await freePort(this.bareHost) } : {}),
      dataDir: join(this.dir, name),
      host: this.host,
    });
    this.members.push(m);
    return m;
  }

  member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no member ${name}`);
    return m;
  }

  initialCluster(members: readonly Member[] = this.members): string {
    return members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  }

  /** Starts the given members (default all) as a new cluster of exactly them. */
  start(members: readonly Member[] = this.members, extra: readonly string[] = []): void {
    const ic = this.initialCluster(members);
    for (const m of members) this.restart(m, ["--initial-cluster", ic, "--initial-cluster-state", "new", ...extra]);
  }

  /** Starts a member with the cluster's common flags (a restart ignores the bootstrap ones). */
  restart(m: Member, args: readonly string[] = ["--initial-cluster", this.initialCluster(), "--initial-cluster-state", "new"]): void {
    m.start([...this.args, ...args], this.env, this.nodeFlags);
  }

  running(): Member[] {
    return this.members.filter((m) => m.running);
  }

  async status(m: Member): Promise<Status | null> {
    try {
      const r = await fetch(`${m.url}/v1/cluster/status`, { signal: AbortSignal.timeout(2000) });
      if (!r.ok) return null;
      return (await r.json()) as Status;
    } catch {
      return null;
    }
  }

  /** Waits until all running members agree on one leader; returns it. */
  async waitLeader(timeoutMs = 20_000, among: readonly Member[] = this.running()): Promise<Member> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    let silent: readonly Member[] = [];
    while (Date.now() < deadline) {
      const sts = await Promise.all(among.map((m) => this.status(m)));
      silent = among.filter((_, k) => sts[k] === null);
      const ids = new Set(sts.map((s) => s?.leader?.id ?? "none"));
      const first = sts[0];
      if (ids.size === 1 && first?.leader != null) {
        const lid = first.leader.id;
        const idx = sts.findIndex((s) => s?.id === lid);
        const leader = among[idx];
        if (leader !== undefined) return leader;
      }
      last = JSON.stringify(sts.map((s) => (s === null ? null : { name: s.name, role: s.role, leader: s.leader?.name, term: s.term })));
      await sleep(50);
    }
    // What the members that never answered were doing, for a failure seen only under load.
    const tails = silent.map((m) => `\n--- ${m.name} (${m.running ? "running" : "exited"}), last output:\n${m.output.slice(-3000)}`);
    throw new Error(`no agreed leader within ${timeoutMs} ms: ${last}${tails.join("")}`);
  }

  /** Stops every running member (SIGTERM, then SIGKILL) and removes the data unless keep is set. */
  async destroy(keep = false): Promise<void> {
    await Promise.all(
      this.running().map(async (m) => {
        const t = setTimeout(() => m.proc?.kill("SIGKILL"), 25_000);
        m.resume();
        await m.kill("SIGTERM");
        clearTimeout(t);
      }),
    );
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until fn returns a value other than undefined, or throws after timeoutMs. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastErr = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr instanceof Error ? `: ${lastErr.message}` : ""}`);
}

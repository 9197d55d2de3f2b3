// The pod network on the host, as a CNI bridge plugin would set it up, for one
// network block (e2e/harness/network.ts):
//
//   root netns   bridge ccbrN, 198.18.N.1/24, up; plus the "AnyIP" route
//                `local 198.19.N.0/24 dev ccbrN table local`, which makes every
//                ClusterIP a local address: the service proxy can listen on any
//                of them and a connection to one without a listener is refused
//                at once, never routed anywhere.
//   per pod      network namespace concord-N-<uid> (/run/netns), a veth pair
//                whose host end ccvN-<last octet of the pod IP> joins the bridge
//                and whose other end is the pod's eth0 with the pod IP /24;
//                lo up; a route to the service range via 198.18.N.1.
//
//   claim        while the block is claimed (e2e/harness/network.ts), two
//                `unreachable` routes for 198.18.N.0/24 and 198.19.N.0/24 in the
//                root namespace, at a metric below the bridge's own routes: with
//                no bridge (no runner yet, or after a node crash) a connection
//                from the host to a pod IP or ClusterIP fails at once instead of
//                following the default route off the machine.
//
// Deliberately no default route in the pods: with one, a pod's packet to any
// other address would reach the root namespace, and a host that forwards
// (ip_forward=1, as Docker sets it) would send it off the machine. Without one
// it fails in the pod ("network unreachable"). Nothing here touches ip_forward,
// iptables or NAT, and everything is named for its block, so runners of
// different test clusters never touch each other's objects.
//
// Every step is idempotent, so a runner can re-run it after a restart; the
// objects outlive the runner (a kubelet-only stop leaves pods running in them)
// until the pod is deleted or the node "crashes" (teardownNetwork).

import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import type { NetworkBlock } from "../harness/network.ts";

const ipBinary = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].find((p) => existsSync(p)) ?? "ip";
const netnsDir = "/run/netns";
const sysNet = "/sys/class/net";
/** The guard routes' metric: any route the bridge brings (metric 0) wins over them. */
const guardMetric = 9999;

export type NetResult = { readonly type: "Ok" } | { readonly type: "Failed"; readonly message: string };

type IpOutput = { readonly ok: true; readonly stdout: string } | { readonly ok: false; readonly message: string };

/** Runs `ip ARGS` (with `-batch -` lines on stdin when given). */
function ip(args: readonly string[], batch?: readonly string[]): Promise<IpOutput> {
  return new Promise((resolve) => {
    const child = spawn(ipBinary, batch !== undefined ? [...args, "-batch", "-"] : [...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    child.once("error", (e) => {
      resolve({ ok: false, message: `${ipBinary}: ${e.message}` });
    });
    child.once("close", (code) => {
      if (code === 0) resolve({ ok: true, stdout });
      else resolve({ ok: false, message: `ip ${args.join(" ")}${batch !== undefined ? ` (${batch.join("; ")})` : ""}: ${stderr.trim() !== "" ? stderr.trim() : `exit ${String(code)}`}` });
    });
    // An ip that fails early stops reading: its exit status tells why, not the broken pipe.
    child.stdin.on("error", () => undefined);
    child.stdin.end(batch !== undefined ? `${batch.join("\n")}\n` : undefined);
  });
}

function list(dir: string, prefix: string): string[] {
  try {
    return readdirSync(dir).filter((e) => e.startsWith(prefix));
  } catch {
    return [];
  }
}

function linkExists(name: string): boolean {
  return existsSync(`${sysNet}/${name}`);
}

/** SIGKILLs whatever still runs in a namespace (a pod sandbox stops with all it holds). */
async function killNetnsProcesses(name: string): Promise<void> {
  const r = await ip(["netns", "pids", name]);
  if (!r.ok) return;
  for (const line of r.stdout.split("\n")) {
    const pid = Number(line.trim());
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
}

async function deleteNetns(name: string): Promise<string | null> {
  if (!existsSync(`${netnsDir}/${name}`)) return null;
  await killNetnsProcesses(name);
  const r = await ip(["netns", "del", name]);
  return r.ok ? null : r.message;
}

async function deleteLink(name: string): Promise<string | null> {
  if (!linkExists(name)) return null;
  const r = await ip(["link", "del", name]);
  // Removed meanwhile (a veth goes with its peer's namespace) is what we wanted.
  return r.ok || !linkExists(name) ? null : r.message;
}

/** The bridge, its address and the service range's local route; idempotent. */
export async function ensureBridge(net: NetworkBlock): Promise<NetResult> {
  if (!linkExists(net.bridge)) {
    const r = await ip(["link", "add", net.bridge, "type", "bridge"]);
    if (!r.ok && !linkExists(net.bridge)) return { type: "Failed", message: r.message };
  }
  const r = await ip(
    [],
    [
      `addr replace ${net.gateway}/24 dev ${net.bridge}`,
      `link set ${net.bridge} up`,
      `route replace local ${net.serviceCidr} dev ${net.bridge} table local`,
    ],
  );
  return r.ok ? { type: "Ok" } : { type: "Failed", message: r.message };
}

/** A dotted IPv4 network as /proc/net/route writes it: 32-bit little-endian hex. */
function procRouteHex(cidr: string): string {
  const octets = (cidr.split("/")[0] ?? "").split(".").map(Number);
  return octets
    .reverse()
    .map((o) => o.toString(16).padStart(2, "0"))
    .join("")
    .toUpperCase();
}

/** The block's guard routes present in the main table (/proc/net/route: reject routes have no interface). */
function guardRoutes(net: NetworkBlock): string[] {
  let table: string;
  try {
    table = readFileSync("/proc/net/route", "utf8");
  } catch {
    return [];
  }
  const rows = table.split("\n").map((l) => l.trim().split(/\s+/));
  return [net.podCidr, net.serviceCidr].filter((cidr) =>
    rows.some((r) => r[0] === "*" && r[1] === procRouteHex(cidr) && r[6] === String(guardMetric) && r[7] === "00FFFFFF"),
  );
}

export interface HostLeftovers {
  readonly netns: readonly string[];
  /** The bridge and veths. */
  readonly links: readonly string[];
  /** The claim's guard routes (CIDRs). */
  readonly routes: readonly string[];
}

/** What exists on the host for a block. For cleanup and leak checks. */
export function hostLeftovers(net: NetworkBlock): HostLeftovers {
  return {
    netns: list(netnsDir, net.netnsPrefix),
    links: [...list(sysNet, net.vethPrefix), ...(linkExists(net.bridge) ? [net.bridge] : [])],
    routes: guardRoutes(net),
  };
}

/**
 * Routes the block's ranges nowhere (see the header), idempotently. Skipped
 * when not root: such a process cannot change routes, nor run pods either.
 */
export async function guardNetwork(net: NetworkBlock): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const r = await ip([], [net.podCidr, net.serviceCidr].map((c) => `route replace unreachable ${c} metric ${guardMetric}`));
  if (!r.ok) throw new Error(`cannot guard network block ${net.block}: ${r.message}`);
}

/** Everything of the block: what the runner made (teardownNetwork), then the guard routes. */
export async function removeNetwork(net: NetworkBlock): Promise<void> {
  await teardownNetwork(net);
  for (const cidr of guardRoutes(net)) {
    const r = await ip(["route", "del", "unreachable", cidr, "metric", String(guardMetric)]);
    if (!r.ok && guardRoutes(net).includes(cidr)) throw new Error(`cannot remove the guard route of ${cidr}: ${r.message}`);
  }
}

/**
 * Removes what the runner made for the block: processes in its pods'
 * namespaces, the namespaces, veths and the bridge (with its address and
 * routes); not the claim's guard routes. A node crash. Best effort: it throws
 * only when something is left, saying what.
 */
export async function teardownNetwork(net: NetworkBlock): Promise<void> {
  const errors: string[] = [];
  const left = hostLeftovers(net);
  for (const ns of left.netns) {
    const e = await deleteNetns(ns);
    if (e !== null) errors.push(e);
  }
  for (const l of list(sysNet, net.vethPrefix)) {
    const e = await deleteLink(l);
    if (e !== null) errors.push(e);
  }
  const e = await deleteLink(net.bridge);
  if (e !== null) errors.push(e);
  const still = hostLeftovers(net);
  if (still.netns.length > 0 || still.links.length > 0) {
    throw new Error(`cannot remove network block ${net.block} from the host (${[...still.netns, ...still.links].join(", ")}): ${errors.join("; ")}`);
  }
}

/** One runner's pods' sandboxes. Operations are serialized, so two pods never race on the same objects. */
export class PodNetwork {
  readonly net: NetworkBlock;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(net: NetworkBlock) {
    this.net = net;
  }

  netnsName(uid: string): string {
    return `${this.net.netnsPrefix}${uid}`;
  }

  /** What containers enter: `nsenter --net=<path>`. */
  netnsPath(uid: string): string {
    return `${netnsDir}/${this.netnsName(uid)}`;
  }

  private vethName(podIP: string): string {
    return `${this.net.vethPrefix}${podIP.split(".").at(-1) ?? ""}`;
  }

  private serialized<T>(f: () => Promise<T>): Promise<T> {
    const p = this.chain.then(f, f);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** The pod's namespace with eth0 = podIP; kept as it is when already complete (adoption). */
  setUp(uid: string, podIP: string): Promise<NetResult> {
    return this.serialized(async () => {
      const ns = this.netnsName(uid);
      const veth = this.vethName(podIP);
      if (existsSync(`${netnsDir}/${ns}`)) {
        const have = await ip(["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"]);
        if (have.ok && have.stdout.includes(` ${podIP}/24 `) && linkExists(veth)) return { type: "Ok" };
        // Half made (the runner died in the middle): start over.
        await deleteNetns(ns);
      }
      await deleteLink(veth);
      const steps: [readonly string[], readonly string[] | undefined][] = [
        [["netns", "add", ns], undefined],
        [["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns], undefined],
        [["link", "set", veth, "master", this.net.bridge, "up"], undefined],
        [
          ["-n", ns],
          [`addr add ${podIP}/24 dev eth0`, "link set eth0 up", "link set lo up", `route add ${this.net.serviceCidr} via ${this.net.gateway} dev eth0`],
        ],
      ];
      for (const [args, batch] of steps) {
        const r = await ip(args, batch);
        if (!r.ok) {
          await deleteLink(veth);
          await deleteNetns(ns);
          return { type: "Failed", message: r.message };
        }
      }
      return { type: "Ok" };
    });
  }

  /** Removes the pod's namespace and veth, killing anything still inside. */
  tearDown(uid: string, podIP: string | null): Promise<void> {
    return this.serialized(async () => {
      if (podIP !== null) await deleteLink(this.vethName(podIP));
      await deleteNetns(this.netnsName(uid));
    });
  }

  /** Removes the namespaces of pods not in `keep` (deleted while no runner watched). */
  prune(keep: ReadonlySet<string>): Promise<string[]> {
    return this.serialized(async () => {
      const removed: string[] = [];
      for (const ns of list(netnsDir, this.net.netnsPrefix)) {
        if (keep.has(ns.slice(this.net.netnsPrefix.length))) continue;
        await deleteNetns(ns);
        removed.push(ns);
      }
      return removed;
    });
  }
}

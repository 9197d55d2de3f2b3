// A test cluster's network block. Block N (1..250) gives the cluster
//
//   pods      198.18.N.0/24  the runner's bridge ccbrN is 198.18.N.1: the pods'
//                            gateway, the node's IP and the cluster DNS server;
//                            pods get .2 to .254, each in its own network namespace
//   services  198.19.N.0/24  kube-apiserver's --service-cluster-ip-range; its
//                            first address, 198.19.N.1, is the `kubernetes` Service
//
// Both come from 198.18.0.0/15, which RFC 2544 reserves for network testing
// (never routed on the internet), and everything in them lives on a bridge and
// network namespaces the runner creates: nothing is routed off the machine.
// Why not 127/8, as before: kube-apiserver refuses loopback addresses in
// EndpointSlices and Endpoints ("may not be in the loopback range"), so with
// loopback pod IPs kube-controller-manager could never publish endpoints.
//
// The block is claimed before the control plane starts (it needs the service
// range) with a file <claims>/N.json naming its owner (a directory: the control
// plane's) and the claiming process. A claim is stale, and may be taken over,
// when its owner directory is gone or, unless it is `persistent` (a detached
// `npm run cluster:up` cluster, held until `cluster:down`), when the claiming
// process is dead. Whoever takes a block over (or releases it) first removes
// what is left of it on the host: the bridge, the pods' network namespaces and
// veths, the processes still inside those namespaces, and the claim's guard
// routes, which keep the block's addresses from being routed off the machine
// while it is claimed (e2e/runner/podnetwork.ts).

import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { procStartTime, sameProcess } from "../runner/container.ts";
import { guardNetwork, removeNetwork } from "../runner/podnetwork.ts";

export const minBlock = 1;
export const maxBlock = 250;

/** Everything a cluster's network block names: addresses and the host objects the runner creates for it. */
export interface NetworkBlock {
  readonly block: number;
  /** 198.18.N.0/24. */
  readonly podCidr: string;
  /** 198.18.N.1: the bridge's address, the pods' gateway, the node's InternalIP, the cluster DNS server. */
  readonly gateway: string;
  /** 198.19.N.0/24: the apiserver's --service-cluster-ip-range. */
  readonly serviceCidr: string;
  /** 198.19.N.1: the first address of the service range, which the apiserver gives the `kubernetes` Service. */
  readonly kubernetesServiceIP: string;
  /** ccbrN: the bridge in the root network namespace (interface names have at most 15 characters). */
  readonly bridge: string;
  /** concord-N-: the prefix of the pods' network namespaces (`concord-N-<pod uid>`). */
  readonly netnsPrefix: string;
  /** ccvN-: the prefix of the veths' host ends (`ccvN-<last octet of the pod IP>`, at most 15 characters). */
  readonly vethPrefix: string;
}

export function validBlock(n: number): boolean {
  return Number.isInteger(n) && n >= minBlock && n <= maxBlock;
}

/** The block's addresses and names. Pure; an invalid block is a bug. */
export function networkBlock(n: number): NetworkBlock {
  if (!validBlock(n)) throw new Error(`network block ${n} is outside ${minBlock}..${maxBlock}`);
  return {
    block: n,
    podCidr: `198.18.${n}.0/24`,
    gateway: `198.18.${n}.1`,
    serviceCidr: `198.19.${n}.0/24`,
    kubernetesServiceIP: `198.19.${n}.1`,
    bridge: `ccbr${n}`,
    netnsPrefix: `concord-${n}-`,
    vethPrefix: `ccv${n}-`,
  };
}

/**
 * Where claims live. The host's network namespace is one per machine, so as
 * root (the only user who can create bridges) this is /run, not a per-user tmpdir.
 */
export function defaultClaimsDir(): string {
  return process.getuid?.() === 0 ? "/run/concord-e2e/networks" : join(tmpdir(), `concord-e2e-${process.getuid?.() ?? 0}`, "networks");
}

/** What a claim does on the host; tests inject a fake. */
export interface BlockHost {
  /** Removes everything of the block from the host (a dead owner's leftovers; at release). */
  clear(net: NetworkBlock): Promise<void>;
  /** Keeps the block's addresses from being routed off the machine; idempotent. */
  guard(net: NetworkBlock): Promise<void>;
}

const realHost: BlockHost = { clear: removeNetwork, guard: guardNetwork };

export interface ClaimOptions {
  /** Held until released or the owner directory is gone, even after this process exits (`cluster:up`). */
  readonly persistent?: boolean;
  readonly claimsDir?: string;
  readonly host?: BlockHost;
}

export type NetworkClaim = { readonly type: "Claimed"; readonly network: NetworkBlock } | { readonly type: "Taken"; readonly message: string };

interface ClaimFile {
  readonly owner: string;
  readonly pid: number;
  readonly procStart: string | null;
  readonly persistent: boolean;
}

function readClaim(file: string): { claim: ClaimFile; text: string } | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  try {
    const c = JSON.parse(text) as Partial<ClaimFile>;
    if (typeof c.owner !== "string" || typeof c.pid !== "number") return { claim: { owner: "", pid: 0, procStart: null, persistent: false }, text };
    return { claim: { owner: c.owner, pid: c.pid, procStart: typeof c.procStart === "string" ? c.procStart : null, persistent: c.persistent === true }, text };
  } catch {
    // Unreadable (half-written by a process that died): nobody's.
    return { claim: { owner: "", pid: 0, procStart: null, persistent: false }, text };
  }
}

function stale(c: ClaimFile): boolean {
  if (c.owner === "" || !existsSync(c.owner)) return true;
  if (c.persistent) return false;
  return c.procStart !== null ? !sameProcess(c.pid, c.procStart) : procStartTime(c.pid) === null;
}

type Attempt = "New" | "Again" | "Busy";

/**
 * One attempt at block n. A stale claim is moved aside with rename(2), which
 * only one contender can do; the mover checks it moved what it judged stale
 * (not a claim written meanwhile, which it puts back) before writing its own.
 */
function tryClaim(dir: string, n: number, mine: ClaimFile): Attempt {
  const file = join(dir, `${n}.json`);
  const text = JSON.stringify(mine);
  try {
    writeFileSync(file, text, { flag: "wx" });
    return "New";
  } catch {
    // Exists: ours, live, or stale.
  }
  const cur = readClaim(file);
  if (cur === null) return tryClaim(dir, n, mine);
  if (cur.claim.owner === mine.owner) {
    writeFileSync(`${file}.${process.pid}.tmp`, text);
    renameSync(`${file}.${process.pid}.tmp`, file);
    return "Again";
  }
  if (!stale(cur.claim)) return "Busy";
  const aside = `${file}.stale.${process.pid}`;
  try {
    renameSync(file, aside);
  } catch {
    return "Busy";
  }
  let moved = "";
  try {
    moved = readFileSync(aside, "utf8");
  } catch {
    // Cannot happen: we just moved it there.
  }
  if (moved !== cur.text) {
    try {
      linkSync(aside, file);
    } catch {
      // Someone claimed it meanwhile; the claim we moved is lost to its owner, who will find its block taken.
    }
    unlinkSync(aside);
    return "Busy";
  }
  unlinkSync(aside);
  try {
    writeFileSync(file, text, { flag: "wx" });
    return "New";
  } catch {
    return "Busy";
  }
}

/**
 * Claims block `wanted`, or the lowest free one. A block that is new to the
 * owner is cleaned of leftovers first (a dead owner's bridge, namespaces,
 * processes); a block the owner held already is left as it is (its runner may
 * have left pods running for adoption).
 */
export async function claimNetwork(ownerDir: string, wanted: number | "auto", opts: ClaimOptions = {}): Promise<NetworkClaim> {
  const owner = resolve(ownerDir);
  const dir = opts.claimsDir ?? defaultClaimsDir();
  mkdirSync(dir, { recursive: true });
  const mine: ClaimFile = { owner, pid: process.pid, procStart: procStartTime(process.pid), persistent: opts.persistent ?? false };
  const host = opts.host ?? realHost;
  const take = async (n: number): Promise<NetworkClaim | null> => {
    const r = tryClaim(dir, n, mine);
    if (r === "Busy") return null;
    const net = networkBlock(n);
    if (r === "New") await host.clear(net);
    await host.guard(net);
    return { type: "Claimed", network: net };
  };
  if (wanted !== "auto") {
    if (!validBlock(wanted)) return { type: "Taken", message: `network block ${wanted} is outside ${minBlock}..${maxBlock}` };
    const r = await take(wanted);
    if (r !== null) return r;
    const holder = readClaim(join(dir, `${wanted}.json`))?.claim;
    return { type: "Taken", message: `network block ${wanted} (198.18.${wanted}.0/24) is held by ${holder?.owner ?? "?"} (pid ${holder?.pid ?? "?"}; see ${dir})` };
  }
  for (let n = minBlock; n <= maxBlock; n++) {
    const r = await take(n);
    if (r !== null) return r;
  }
  return { type: "Taken", message: `all network blocks ${minBlock}..${maxBlock} are claimed (see ${dir})` };
}

/** Gives the block back, removing what is left of it on the host. Only the owner's claim is released. */
export async function releaseNetwork(ownerDir: string, block: number, opts: Pick<ClaimOptions, "claimsDir" | "host"> = {}): Promise<void> {
  const file = join(opts.claimsDir ?? defaultClaimsDir(), `${block}.json`);
  const c = readClaim(file);
  if (c === null || c.claim.owner !== resolve(ownerDir)) return;
  await (opts.host ?? realHost).clear(networkBlock(block));
  rmSync(file, { force: true });
}

/** The block a directory used before (a control plane's etcd holds pod and Service IPs from it). */
export function recordedBlock(dir: string): number | null {
  try {
    const j = JSON.parse(readFileSync(join(dir, "network.json"), "utf8")) as { block?: unknown };
    return typeof j.block === "number" && validBlock(j.block) ? j.block : null;
  } catch {
    return null;
  }
}

export function recordBlock(dir: string, net: NetworkBlock): void {
  writeFileSync(join(dir, "network.json"), `${JSON.stringify(net, null, 1)}\n`);
}

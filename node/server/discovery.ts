// What a member with an empty data directory does first: find out whether
// its cluster already exists, and so whether to bootstrap it, join it, or
// refuse to start because its data was lost.

import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { NodeId } from "../raft/index.ts";
import { readSnapshot } from "../raft/codec.ts";
import { decodeWith, isDecodeError } from "../raft/codec.ts";
import { KvStore } from "../kv/index.ts";
import { Transport, queryPeer, urlHost } from "../transport/index.ts";
import { nodeId } from "../raft/index.ts";
import type { Config } from "./config.ts";
import type { Identity, SeedMember } from "./identity.ts";
import { clusterIdFor, initialMemberId, randomMemberId } from "./identity.ts";
import type { MemberInfo } from "./state.ts";
import { decodeStateSnapshot, encodeStateSnapshot } from "./state.ts";

export interface Discovered {
  readonly identity: Identity;
  /** Set when this member must initialise a new cluster: the initial snapshot's voters and data. */
  readonly bootstrap: { readonly voters: readonly NodeId[]; readonly data: Uint8Array } | null;
  /** The members known so far (a joining member needs them to accept the leader's connection). */
  readonly members: readonly MemberInfo[];
}

/**
 * What a starting member is waiting for, published on its client port while it
 * waits (an operator reads it to know whether to add or replace the member).
 */
export type DiscoveryPhase =
  | { readonly phase: "bootstrapping"; readonly message: string }
  | { readonly phase: "joining"; readonly message: string }
  | { readonly phase: "dataLost"; readonly memberId: string; readonly message: string };

export interface DiscoveryError {
  readonly type: "DiscoveryError";
  readonly message: string;
}

const fail = (message: string): DiscoveryError => ({ type: "DiscoveryError", message });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const seed = (m: MemberInfo): SeedMember => ({ id: m.id, name: m.name, peerUrls: m.peerUrls });

/** The first snapshot of a new cluster: its members and an empty store at index 1. */
export function initialSnapshotData(clusterId: string, members: readonly SeedMember[]): Uint8Array {
  return encodeStateSnapshot({
    clusterId,
    members: members.map((m) => ({ ...m, clientUrls: [] })),
    removed: [],
    kv: new KvStore({ appliedIndex: 1 }).snapshot(),
  });
}

/** The peer URL this member advertises: where the others dial it. */
export function advertisedPeerUrl(config: Config): string {
  const u = config.initialAdvertisePeerUrls?.[0] ?? config.listenPeerUrls[0];
  return u === undefined ? "" : u.origin;
}

export async function discover(config: Config, log: Logger, onPhase: (p: DiscoveryPhase) => void = () => undefined): Promise<Discovered | DiscoveryError> {
  if (config.restoreSnapshot !== undefined) return restoreFromFile(config, config.restoreSnapshot, log);
  const named = config.initialCluster.has(config.name);
  const bootstraps = config.initialClusterState === "new" || (config.initialClusterState === "auto" && named);
  // While deciding, answer other starting members' queries: "not bootstrapped".
  const clusterId = bootstraps ? clusterIdFor(config.initialClusterToken, config.initialCluster) : "";
  const listen = config.listenPeerUrls[0];
  if (listen === undefined) return fail("no peer URL to listen on");
  const responder = new Transport({
    self: nodeId(`starting-${config.name}`),
    clusterId,
    listen: { host: urlHost(listen), port: Number(listen.port) },
    peers: [],
    onMessage: () => undefined,
    onQuery: () => ({ bootstrapped: false }),
    logger: log.child({ component: "discovery" }),
  });
  try {
    await responder.start();
  } catch (e) {
    return fail(`cannot listen for peers on ${listen.origin}: ${(e as Error).message}`);
  }
  try {
    switch (config.initialClusterState) {
      case "new":
        return await bootstrapNew(config, log, onPhase);
      case "existing":
        return await joinExisting(config, log, onPhase, { contacts: contactsOf(config), wait: false });
      case "auto":
        return named ? await bootstrapNew(config, log, onPhase) : await joinExisting(config, log, onPhase, { contacts: contactsOf(config), wait: true });
    }
  } finally {
    await responder.stop();
  }
}

type Answer = { readonly url: string; readonly bootstrapped: false } | { readonly url: string; readonly bootstrapped: true; readonly clusterId: string; readonly members: MemberInfo[] };

async function askPeers(urls: readonly string[], clusterId: string | undefined): Promise<Answer[]> {
  const answers = await Promise.all(
    urls.map(async (url): Promise<Answer | null> => {
      const r = await queryPeer(url, { timeoutMs: 1000, ...(clusterId === undefined ? {} : { clusterId }) });
      if (!r.ok) return null;
      if (!r.bootstrapped) return { url, bootstrapped: false };
      const s = decodeStateSnapshot(r.info);
      if (isDecodeError(s)) return null;
      return { url, bootstrapped: true, clusterId: s.clusterId, members: [...s.members] };
    }),
  );
  return answers.filter((a): a is Answer => a !== null);
}

/** A member listed as a voter that has run before (it published its client URLs) must not start empty. */
function lostData(m: MemberInfo): DiscoveryError {
  return fail(
    `member ${m.name} (${m.id}) already exists in the cluster and has run before, but this data directory is empty: ` +
      `its data was lost. Remove the member (DELETE /v1/cluster/members/${m.id}) and add it again (POST /v1/cluster/members) to rejoin.`,
  );
}

/** The other members named in --initial-cluster: whom a joining member asks. */
function contactsOf(config: Config): string[] {
  return [...config.initialCluster].filter(([name]) => name !== config.name).map(([, u]) => u.origin);
}

async function bootstrapNew(config: Config, log: Logger, onPhase: (p: DiscoveryPhase) => void): Promise<Discovered | DiscoveryError> {
  const cluster = config.initialCluster;
  const mine = cluster.get(config.name);
  const advertised = advertisedPeerUrl(config);
  if (mine === undefined) return fail(`--initial-cluster does not name this member (${config.name})`);
  if (mine.origin !== advertised) {
    return fail(`--initial-cluster gives ${mine.origin} for ${config.name}, but it advertises ${advertised} (--initial-advertise-peer-urls)`);
  }
  const clusterId = clusterIdFor(config.initialClusterToken, cluster);
  const members: MemberInfo[] = [...cluster].map(([name, url]) => ({
    id: initialMemberId(clusterId, name, url.origin),
    name,
    peerUrls: [url.origin],
    clientUrls: [],
  }));
  const me = members.find((m) => m.name === config.name);
  if (me === undefined) return fail("internal: this member is missing from its own initial cluster");
  const identity: Identity = { id: me.id, name: config.name, clusterId, origin: "new", members: members.map(seed) };
  const others = members.filter((m) => m !== me).map((m) => m.peerUrls[0] ?? "");
  const quorum = Math.floor(members.length / 2) + 1;
  const data = initialSnapshotData(clusterId, members);
  const boot: Discovered = { identity, bootstrap: { voters: members.map((m) => m.id), data }, members };

  // Bootstrap only once a majority of the initial members (this one included)
  // is known to be new too, and no peer reports the cluster already running.
  for (let round = 0; ; round++) {
    const answers = others.length === 0 ? [] : await askPeers(others, clusterId);
    const running = answers.find((a) => a.bootstrapped);
    if (running?.bootstrapped === true) {
      const listed = running.members.find((m) => m.id === me.id);
      if (config.initialClusterState === "auto" && (listed === undefined || listed.clientUrls.length > 0)) {
        // Not (or no longer) the initial member of that name: the cluster was
        // built without it, or this is a replacement for one whose data was
        // lost. Join as whatever member the cluster lists under this name.
        const contacts = running.members.filter((m) => m.id !== me.id).flatMap((m) => m.peerUrls);
        return joinExisting(config, log, onPhase, { contacts, wait: true });
      }
      if (listed === undefined) return fail(`member ${config.name} (${me.id}) was removed from the cluster; add it again to rejoin`);
      if (listed.clientUrls.length > 0) return lostData(listed);
      log.info({ peer: running.url }, "the cluster is already running; joining it from the initial snapshot");
      return boot;
    }
    const fresh = answers.length + 1;
    if (fresh >= quorum) {
      log.info({ clusterId, members: members.map((m) => `${m.name}=${m.id}`) }, "bootstrapping a new cluster");
      return boot;
    }
    if (round % 10 === 0) log.info({ reachable: answers.length, needed: quorum - 1 }, "waiting for a majority of the initial members before bootstrapping");
    onPhase({ phase: "bootstrapping", message: `waiting for a majority of the initial members (${fresh} of ${quorum} reachable)` });
    await sleep(500);
  }
}

/**
 * Joins a running cluster once it lists this member by name (after POST
 * /v1/cluster/members). `wait` (auto mode) waits for that indefinitely, and
 * also waits out a listing whose data is lost until it is replaced, instead of
 * failing: an operator does the adding and replacing.
 */
async function joinExisting(
  config: Config,
  log: Logger,
  onPhase: (p: DiscoveryPhase) => void,
  o: { readonly contacts: readonly string[]; readonly wait: boolean },
): Promise<Discovered | DiscoveryError> {
  let urls = [...new Set(o.contacts)];
  if (urls.length === 0) return fail("--initial-cluster-state existing needs --initial-cluster to name at least one running member");
  const advertised = advertisedPeerUrl(config);
  const deadline = Date.now() + 120_000;
  for (let round = 0; o.wait || Date.now() < deadline; round++) {
    const answers = await askPeers(urls, undefined);
    let lost: MemberInfo | null = null;
    for (const a of answers) {
      if (!a.bootstrapped) continue;
      // Learn every current member's address, so that we still find the
      // cluster after the members we first asked are gone.
      urls = [...new Set([...urls, ...a.members.filter((m) => m.name !== config.name).flatMap((m) => m.peerUrls)])];
      const listed = a.members.find((m) => m.name === config.name);
      if (listed === undefined) continue;
      if (listed.peerUrls.length > 0 && !listed.peerUrls.includes(advertised)) {
        return fail(`the cluster lists ${config.name} with peer URL ${listed.peerUrls.join(",")}, but this member advertises ${advertised}`);
      }
      if (listed.clientUrls.length > 0) {
        if (!o.wait) return lostData(listed);
        lost = listed;
        continue;
      }
      log.info({ id: listed.id, peer: a.url }, "joining an existing cluster");
      return {
        identity: { id: listed.id, name: config.name, clusterId: a.clusterId, origin: "join", members: a.members.map(seed) },
        bootstrap: null,
        members: a.members,
      };
    }
    if (lost !== null) {
      const message =
        `member ${lost.name} (${lost.id}) has run before, but this data directory is empty: its data was lost. ` +
        `Waiting for it to be replaced (DELETE /v1/cluster/members/${lost.id}, then POST /v1/cluster/members).`;
      if (round % 10 === 0) log.warn({ id: lost.id }, message);
      onPhase({ phase: "dataLost", memberId: lost.id, message });
    } else {
      const message = `waiting to be added to the cluster (POST /v1/cluster/members {"name":"${config.name}","peerUrls":["${advertised}"]})`;
      if (round % 10 === 0) log.info({ asked: urls }, message);
      onPhase({ phase: "joining", message });
    }
    await sleep(1000);
  }
  return fail(`${config.name} is not a member of the cluster at ${urls.join(", ")}: add it first with POST /v1/cluster/members`);
}

/** Starts a new single-member cluster from a backup taken with GET /v1/snapshot. */
async function restoreFromFile(config: Config, file: string, log: Logger): Promise<Discovered | DiscoveryError> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    return fail(`cannot read --restore-snapshot ${file}: ${(e as Error).message}`);
  }
  const snap = decodeWith(bytes, readSnapshot);
  if (isDecodeError(snap)) return fail(`--restore-snapshot ${file} is not a Concord snapshot: ${snap.message} at byte ${snap.offset}`);
  const state = decodeStateSnapshot(snap.data);
  if (isDecodeError(state)) return fail(`--restore-snapshot ${file} holds an unreadable state: ${state.message}`);
  const kv = KvStore.restore(state.kv);
  if ("type" in kv) return fail(`--restore-snapshot ${file} holds an unreadable key-value store: ${kv.reason}`);
  const clusterId = `${clusterIdFor(config.initialClusterToken, new Map([[config.name, new URL(advertisedPeerUrl(config))]]))}r`;
  const id = randomMemberId();
  const member: MemberInfo = { id, name: config.name, peerUrls: [advertisedPeerUrl(config)], clientUrls: [] };
  // The restored store continues its revisions; the new cluster's log starts at index 1.
  // A new cluster: the old one's removed ids mean nothing to it.
  const data = encodeStateSnapshot({ clusterId, members: [member], removed: [], kv: kv.rebased(1).snapshot() });
  log.info({ file, revision: kv.revision, keys: kv.keyCount, clusterId }, "restoring a new single-member cluster from a snapshot");
  return { identity: { id, name: config.name, clusterId, origin: "restore", members: [seed(member)] }, bootstrap: { voters: [id], data }, members: [member] };
}

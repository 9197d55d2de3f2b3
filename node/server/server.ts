// concord-node: the Raft driver, durable storage, peer transport, state
// machine and HTTP API of one member, wired together.

import { randomBytes } from "node:crypto";
import type { Server as HttpServer } from "node:http";
import { createServer } from "node:http";
import type { Logger } from "pino";
import type { LeaseId } from "../kv/index.ts";
import { KvStore, encodeCommand } from "../kv/index.ts";
import type { NodeId, RaftConfig } from "../raft/index.ts";
import { SeededRng, defaultRaftConfig } from "../raft/index.ts";
import { DurableStorage } from "../storage/index.ts";
import { PeerBeacon, Transport, describePeerError, urlHost } from "../transport/index.ts";
import type { Config } from "./config.ts";
import type { Outcome } from "./driver.ts";
import { RaftDriver } from "./driver.ts";
import { buildHandler } from "./http.ts";
import type { Identity } from "./identity.ts";
import { readIdentity, writeIdentity } from "./identity.ts";
import { advertisedPeerUrl, discover, initialSnapshotData } from "./discovery.ts";
import { LeaseClock } from "./leases.ts";
import { startingResponder } from "./starting.ts";
import { NodeMetrics } from "./metrics.ts";
import type { MemberInfo } from "./state.ts";
import { ConcordState, decodeStateSnapshot, encodeMemberCommand } from "./state.ts";
import { isDecodeError } from "../raft/codec.ts";

export interface StartError {
  readonly type: "StartError";
  readonly message: string;
}

const startError = (message: string): StartError => ({ type: "StartError", message });

export class ConcordServer {
  readonly config: Config;
  readonly log: Logger;
  readonly identity: Identity;
  readonly metrics: NodeMetrics;
  readonly state: ConcordState;
  readonly driver: RaftDriver;
  readonly transport: Transport;
  readonly storage: DurableStorage;
  readonly leases = new LeaseClock(() => Date.now());
  private http: HttpServer | null = null;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  /** Set while shutting down: new client requests are refused. */
  draining = false;
  clientUrl = "";
  peerPort = 0;
  /** Liveness beacons, unless off (--peer-beacons=false) or their UDP port could not be bound. */
  beacon: PeerBeacon | null = null;

  private constructor(
    config: Config,
    log: Logger,
    identity: Identity,
    metrics: NodeMetrics,
    state: ConcordState,
    driver: RaftDriver,
    transport: Transport,
    storage: DurableStorage,
  ) {
    this.config = config;
    this.log = log;
    this.identity = identity;
    this.metrics = metrics;
    this.state = state;
    this.driver = driver;
    this.transport = transport;
    this.storage = storage;
  }

  static async start(config: Config, log: Logger): Promise<ConcordServer | StartError> {
    const metrics = new NodeMetrics();
    const opened = await DurableStorage.open(config.dataDir, {
      keepEntries: config.snapshotCatchupEntries,
      logger: log.child({ component: "storage" }),
      onFsync: (s) => {
        metrics.walFsync.observe(s);
      },
    });
    if (!opened.ok) {
      const e = opened.error;
      const where = "file" in e ? ` (${e.file}${"offset" in e ? ` at offset ${e.offset}` : ""})` : "";
      return startError(`cannot open the data directory ${config.dataDir}: ${e.message}${where}`);
    }
    const storage = opened.storage;
    if (opened.repaired !== null) {
      log.warn({ file: opened.repaired.file, offset: opened.repaired.offset, droppedBytes: opened.repaired.droppedBytes }, "repaired a torn write at the end of the WAL");
    }

    // Who are we? An initialised data directory decides; otherwise the flags do.
    const found = await readIdentity(config.dataDir);
    if ("error" in found) return startError(found.error);
    let identity: Identity;
    let snapshotData: Uint8Array | null = opened.snapshot?.data ?? null;
    let seedMembers: readonly MemberInfo[];
    const bootstrap = async (voters: readonly NodeId[], data: Uint8Array): Promise<StartError | null> => {
      const res = await storage.bootstrap(voters, data);
      if (!res.ok) return startError(`cannot initialise ${config.dataDir}: ${"message" in res.error ? res.error.message : res.error.type}`);
      snapshotData = data;
      return null;
    };
    if (found.found) {
      identity = found.identity;
      seedMembers = identity.members.map((m) => ({ ...m, clientUrls: [] }));
      if (snapshotData === null) {
        // The identity is written before the first snapshot: finish what was interrupted.
        if (identity.origin === "new") {
          const err = await bootstrap(identity.members.map((m) => m.id), initialSnapshotData(identity.clusterId, identity.members));
          if (err !== null) return err;
        } else if (identity.origin === "restore") {
          return startError(`${config.dataDir} holds an interrupted restore; empty it and run --restore-snapshot again`);
        }
        // A joining member that has not yet received its first snapshot starts empty again.
      }
      log.info({ id: identity.id, name: identity.name }, "resuming from the data directory; bootstrap flags are ignored");
    } else {
      const responder = await startingResponder(config);
      const d = await discover(config, log, (p) => responder?.setPhase(p));
      await responder?.close();
      if ("type" in d) return startError(d.message);
      identity = d.identity;
      seedMembers = d.members;
      await writeIdentity(config.dataDir, identity);
      if (d.bootstrap !== null) {
        const err = await bootstrap(d.bootstrap.voters, d.bootstrap.data);
        if (err !== null) return err;
      }
    }

    // The state machine, from the snapshot (or empty, for a member that joins and awaits one).
    let state: ConcordState;
    if (snapshotData !== null) {
      const parsed = decodeStateSnapshot(snapshotData);
      if (isDecodeError(parsed)) return startError(`the snapshot in ${config.dataDir} is unreadable: ${parsed.message}`);
      const kv = KvStore.restore(parsed.kv);
      if ("type" in kv) return startError(`the key-value snapshot in ${config.dataDir} is unreadable: ${kv.reason}`);
      state = new ConcordState(parsed.clusterId, kv, parsed.members, parsed.removed);
    } else {
      // A joining member starts empty; the leader sends it a snapshot.
      state = new ConcordState(identity.clusterId, new KvStore(), seedMembers);
    }

    const tickMs = config.heartbeatIntervalMs;
    const raftCfg: RaftConfig = {
      ...defaultRaftConfig(identity.id, new SeededRng(randomBytes(4).readUInt32BE(0))),
      electionTick: Math.max(2, Math.round(config.electionTimeoutMs / tickMs)),
      heartbeatTick: 1,
      applied: state.appliedIndex(),
      // At most two appends in flight to a follower: entries proposed while
      // they are unacknowledged go out together in the next one, so that under
      // load each append (and each follower fsync) carries a batch, instead
      // of a message per event-loop turn. Measured with npm run bench:profile
      // (64 clients): about 5-10 % more writes per second than a window of 256.
      maxInflightMsgs: 2,
    };
    const epoch = randomBytes(6).toString("hex");
    const driver = new RaftDriver(
      { raft: raftCfg, storage, tickMs, snapshotCount: config.snapshotCount, requestTimeoutMs: config.requestTimeoutMs },
      storage.memory,
      state,
      {},
      epoch,
    );

    const peerUrl = config.listenPeerUrls[0];
    if (peerUrl === undefined) return startError("no peer URL to listen on");
    const peerHost = urlHost(peerUrl);
    // Set once the server exists; the transport can call back only after start().
    let server: ConcordServer | null = null;
    const transport = new Transport({
      self: identity.id,
      clusterId: state.clusterId,
      listen: { host: peerHost, port: Number(peerUrl.port) },
      peers: peersOf(state.memberList(), identity.id),
      advertiseUrl: advertisedPeerUrl(config),
      isRemoved: (id) => state.isRemoved(id),
      onRemovedByPeer: (peer) => {
        server?.removedByPeer(peer);
      },
      onMessage: (m) => {
        driver.receive(m);
      },
      onUnreachable: (peer) => {
        driver.reportUnreachable(peer);
      },
      onSnapshotStatus: (peer, failed) => {
        driver.reportSnapshot(peer, failed);
      },
      onQuery: () => ({ bootstrapped: true, info: state.snapshotSummary() }),
      metrics: {
        rtt: (peer, seconds) => {
          metrics.peerRtt.observe({ member: peer }, seconds);
        },
        sentFailure: (peer) => {
          metrics.peerSentFailures.inc({ member: peer });
        },
      },
      logger: log.child({ component: "transport" }),
    });
    driver.setTransport(transport);

    server = new ConcordServer(config, log, identity, metrics, state, driver, transport, storage);
    server.wireEvents();
    try {
      const { port } = await transport.start();
      server.peerPort = port;
    } catch (e) {
      await storage.close();
      return startError(`cannot listen for peers on ${peerUrl.origin}: ${(e as Error).message}`);
    }
    if (config.peerBeacons) await server.startBeacon(peerHost, server.peerPort);
    const err = await server.listenHttp();
    if (err !== null) {
      await server.beacon?.stop();
      await transport.stop();
      await storage.close();
      return err;
    }
    driver.start();
    server.startBackgroundWork();
    log.info(
      { id: identity.id, name: identity.name, clientUrl: server.clientUrl, peerPort: server.peerPort, clusterId: state.clusterId },
      "concord-node started",
    );
    return server;
  }

  /**
   * Liveness beacons over UDP on the peer port's number (PeerBeacon). A
   * member that cannot bind it runs without them: heartbeats alone decide.
   */
  private async startBeacon(host: string, port: number): Promise<void> {
    const { config, log, driver } = this;
    const res = await PeerBeacon.start({
      self: this.identity.id,
      clusterId: this.state.clusterId,
      bind: { host, port },
      intervalMs: config.heartbeatIntervalMs,
      // Beacons only while this member's loop is late: followers time out after
      // an election timeout at the earliest, so a quarter of it leaves them time to arrive.
      lateMs: config.electionTimeoutMs / 4,
      // Long enough to bridge the pauses seen under load (up to about 150 ms),
      // short enough that a wedged leader is still replaced within half a second at the defaults.
      bridgeMs: 4 * config.electionTimeoutMs,
      logger: log.child({ component: "beacon" }),
    });
    if ("type" in res) {
      log.warn({ err: res.message, port }, "liveness beacons are off (UDP port not usable); heartbeats alone decide");
      return;
    }
    this.beacon = res;
    this.setBeaconPeers(peersOf(this.state.memberList(), this.identity.id));
    driver.setBeacon(res);
    this.metrics.beaconCounts = () => res.counters();
  }

  private setBeaconPeers(peers: readonly [NodeId, string][]): void {
    if (this.beacon === null) return;
    this.beacon.setPeers(peers);
    // A series per peer from the start, so that rate() sees the first pause.
    for (const [id] of peers) this.metrics.beaconsBridged.inc({ member: this.state.member(id)?.name ?? id }, 0);
  }

  private wireEvents(): void {
    const { metrics, log, driver, state } = this;
    let leaderKnownBefore = false;
    driver.onFatal((err) => {
      log.fatal({ err }, "storage failed; stopping");
      void this.stop().finally(() => process.exit(1));
    });
    const events = {
      onLeaderChange: (leader: NodeId | null, term: number): void => {
        metrics.hasLeader.set(leader === null ? 0 : 1);
        metrics.isLeader.set(leader === this.identity.id ? 1 : 0);
        metrics.term.set(term);
        if (leader !== null) {
          if (leaderKnownBefore) metrics.leaderChanges.inc();
          leaderKnownBefore = true;
          log.info({ leader, leaderName: state.member(leader)?.name, term, index: driver.raw.raft.log.lastIndex() }, "leader elected");
        } else {
          log.info({ term }, "leader lost");
        }
        if (leader === this.identity.id) {
          // A new leader cannot know how long the old one's lease clocks ran.
          this.leases.sync(state.kv.leases(), true);
        }
      },
      onRoleChange: (role: string): void => {
        log.debug({ role, term: driver.raw.raft.term }, "role changed");
      },
      onApplied: (index: number): void => {
        metrics.appliedIndex.set(index);
        metrics.commitIndex.set(driver.raw.raft.log.committed);
        metrics.mvccKeys.set(state.kv.keyCount);
        metrics.term.set(driver.raw.raft.term);
      },
      onEntriesApplied: (count: number): void => {
        metrics.proposalsCommitted.inc(count);
        metrics.proposalsApplied.inc(count);
      },
      onProposalFailed: (): void => {
        metrics.proposalsFailed.inc();
      },
      onSnapshotInstalled: (index: number, term: number): void => {
        log.info({ index, term }, "installed a snapshot from the leader");
      },
      onBeaconBridged: (peer: NodeId): void => {
        metrics.beaconsBridged.inc({ member: state.member(peer)?.name ?? peer });
      },
      onSnapshot: (seconds: number, index: number): void => {
        metrics.snapshotDuration.observe(seconds);
        log.info({ index, appliedIndex: state.appliedIndex(), term: driver.raw.raft.term, seconds }, "snapshot taken");
      },
    };
    driver.setEvents(events);
    state.setEvents({
      onLeaseKeepalive: (id: LeaseId) => {
        const l = state.kv.lease(id);
        if (l !== null) this.leases.touch(id, l.ttlSeconds);
      },
      onMembersChanged: () => {
        this.syncPeers();
      },
      onMemberRemoved: (id: NodeId) => {
        if (id === this.identity.id) this.removed("applied the change that removed it");
      },
    });
  }

  /**
   * Makes the transport's peers the member directory's members, keeping the
   * remotes it added from their hellos until the directory lists them or
   * says they were removed (see Transport.setPeers).
   */
  private syncPeers(): void {
    const peers = peersOf(this.state.memberList(), this.identity.id);
    this.setBeaconPeers(peers);
    for (const e of this.transport.setPeers(peers)) {
      this.log.warn({ error: e }, `member directory entry not usable as a peer: ${describePeerError(e)}`);
    }
    const raft = this.driver.raw.raft;
    this.log.info(
      {
        members: this.state.memberList().map((m) => `${m.name}(${m.id})`),
        voters: raft.conf().voters,
        learners: raft.conf().learners,
        term: raft.term,
        index: this.state.appliedIndex(),
      },
      "membership changed",
    );
  }

  /**
   * A member removed from the cluster stops, as etcd's do: it can no longer
   * serve, and would only retry elections nobody answers. It learns of its
   * removal by applying the change, or, if the commit never reaches it (the
   * leader stops sending to it once the change commits), from a peer that
   * refuses its id (see removedByPeer). It waits a moment so that the commit
   * reaches the others first.
   */
  private removed(how: string): void {
    if (this.removedTimer !== null) return;
    const raft = this.driver.raw.raft;
    this.log.warn({ id: this.identity.id, term: raft.term, index: this.state.appliedIndex(), how }, "this member was removed from the cluster; stopping");
    this.draining = true;
    this.removedTimer = setTimeout(() => {
      void this.stop().finally(() => process.exit(0));
    }, 1000);
  }

  /**
   * A peer refused this member's id as removed. Peers refuse only ids that a
   * committed change removed, and ids are never reused, so this member is
   * gone for good (etcd stops on its peers' 410 Gone the same way).
   */
  removedByPeer(peer: NodeId): void {
    const name = this.state.member(peer)?.name ?? peer;
    this.removed(`member ${name} refused this member's id`);
  }

  private removedTimer: NodeJS.Timeout | null = null;

  private async listenHttp(): Promise<StartError | null> {
    const url = this.config.listenClientUrls[0];
    if (url === undefined) return startError("no client URL to listen on");
    const http = createServer({ keepAliveTimeout: 65_000 }, buildHandler(this));
    this.http = http;
    const err = await new Promise<Error | null>((resolve) => {
      http.once("error", resolve);
      http.listen(Number(url.port), urlHost(url), () => {
        http.off("error", resolve);
        resolve(null);
      });
    });
    if (err !== null) return startError(`cannot listen for clients on ${url.origin}: ${err.message}`);
    const addr = http.address();
    const port = typeof addr === "object" && addr !== null ? addr.port : Number(url.port);
    this.clientUrl = `http://${url.hostname}:${port}`;
    return null;
  }

  /** The client URLs this member advertises. */
  advertisedClientUrls(): string[] {
    const adv = this.config.advertiseClientUrls;
    return adv === undefined ? [this.clientUrl] : adv.map((u) => u.origin);
  }

  private startBackgroundWork(): void {
    // Publish our client URLs once a leader exists and the directory lacks them.
    this.timers.push(
      setInterval(() => {
        void this.maybePublish();
        this.leaderDuties();
        this.updateGauges();
      }, 250),
    );
  }

  private publishing = false;

  private async maybePublish(): Promise<void> {
    if (this.publishing || this.driver.raw.raft.lead === null) return;
    const me = this.state.member(this.identity.id);
    if (me === undefined) return;
    const want = this.advertisedClientUrls();
    if (me.clientUrls.length === want.length && me.clientUrls.every((u, k) => u === want[k])) return;
    this.publishing = true;
    try {
      const res = await this.driver.propose("member", encodeMemberCommand({ type: "publish", id: this.identity.id, clientUrls: want }));
      if (res.ok) this.log.info({ clientUrls: want }, "published client URLs");
    } finally {
      this.publishing = false;
    }
  }

  private revoking = new Set<LeaseId>();
  private compacting = false;

  /** Lease expiry and automatic compaction, done by the leader through the log. */
  private leaderDuties(): void {
    if (this.driver.raw.raft.role !== "leader") return;
    const kv = this.state.kv;
    this.leases.sync(kv.leases(), false);
    for (const id of this.leases.expired()) {
      if (this.revoking.has(id)) continue;
      this.revoking.add(id);
      void this.driver.propose("kv", encodeCommand({ type: "leaseRevoke", id })).finally(() => this.revoking.delete(id));
      this.log.info({ lease: id }, "lease expired; revoking");
    }
    const retention = this.config.autoCompactionRetention;
    const target = retention === 0 ? null : kv.compactTargetForRetention(retention);
    // Compact in steps of at least 1% of the retention, not once per write.
    if (target !== null && !this.compacting && target - kv.compactRevision >= Math.max(1, Math.floor(retention / 100))) {
      this.compacting = true;
      void this.driver.propose("kv", encodeCommand({ type: "compact", revision: target })).finally(() => {
        this.compacting = false;
      });
    }
  }

  private updateGauges(): void {
    const st = this.driver.raw.status();
    this.metrics.commitIndex.set(st.commit);
    this.metrics.term.set(st.term);
    this.metrics.proposalsPending.set(this.driver.pendingProposals());
    this.metrics.followerLag.reset();
    if (st.role === "leader") {
      for (const [id, p] of st.progress) if (id !== this.identity.id) this.metrics.followerLag.set({ member: id }, Math.max(0, st.lastIndex - p.match));
    }
  }

  /** Proposes a key-value command and waits for its result. */
  proposeKv(payload: Uint8Array): Promise<Outcome<unknown>> {
    return this.driver.propose("kv", payload);
  }

  /**
   * Graceful stop: refuse new requests, hand leadership to the most
   * caught-up voter, let in-flight writes finish, then close everything.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.draining = true;
    this.log.info("shutting down");
    const st = this.driver.raw.status();
    if (st.role === "leader") {
      let best: { id: NodeId; match: number } | null = null;
      for (const [id, p] of st.progress) {
        if (id === this.identity.id || !st.conf.voters.includes(id)) continue;
        if (best === null || p.match > best.match) best = { id, match: p.match };
      }
      if (best !== null) {
        this.log.info({ to: best.id, toName: this.state.member(best.id)?.name, term: st.term }, "transferring leadership before shutdown");
        this.driver.transferLeadership(best.id);
        const deadline = Date.now() + 3000;
        while (this.driver.raw.raft.role === "leader" && Date.now() < deadline) await sleep(10);
      }
    }
    for (const t of this.timers) clearInterval(t);
    await this.driver.idle();
    this.driver.stop();
    this.state.hub.close();
    await new Promise<void>((resolve) => {
      if (this.http === null) {
        resolve();
        return;
      }
      this.http.close(() => {
        resolve();
      });
      this.http.closeAllConnections();
    });
    await this.beacon?.stop();
    await this.transport.stop();
    await this.storage.close();
    this.log.info("stopped");
  }
}

function peersOf(members: readonly MemberInfo[], self: NodeId): [NodeId, string][] {
  const out: [NodeId, string][] = [];
  for (const m of members) {
    const url = m.peerUrls[0];
    if (m.id !== self && url !== undefined) out.push([m.id, url]);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection package does it, so that of several operator replicas exactly
// one reconciles at a time.
//
// - A candidate takes the Lease when it is unheld (holderIdentity "") or expired.
//   Expiry is judged by the candidate's own clock: leaseDurationSeconds after it
//   last saw the record change. Clocks of different machines are never compared.
// - The leader renews every retryPeriod by an update carrying the resourceVersion
//   it read, so two writers cannot both win (optimistic concurrency).
// - If the leader cannot renew within renewDeadline of its last successful renew,
//   or it sees another holder, it stops leading: onStoppedLeading("lost"). The
//   process should then exit (controller-runtime does the same): its caches and
//   queues belong to a term that is over, and a restart is the simple way to
//   start clean. After run() resolves the elector is finished.
// - Safety: renewDeadline < leaseDuration, so a leader that cannot renew gives up
//   (isLeader() turns false) before any other candidate may take over, provided
//   clocks run at the same rate (no synchronised wall time needed).
// - On stop() the leader first aborts the signal given to onStartedLeading, waits
//   for that work to finish (at most until its renew deadline), then releases the
//   Lease (holder "", duration 1 s) so that a standby takes over at once.

import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import { sleep, systemClock, within } from "./clock.ts";
import type { Clock } from "./clock.ts";
import { failed, isRecord, ok } from "./errors.ts";
import type { ApiError, Result } from "./errors.ts";
import { silentLogger } from "./logger.ts";
import type { Logger } from "./logger.ts";
import { RestClient, resourcePath } from "./rest.ts";

/** The fields of a Lease's spec that leader election reads and writes. */
export interface LeaseSpec {
  readonly holderIdentity: string;
  readonly leaseDurationSeconds: number;
  readonly acquireTime: string;
  readonly renewTime: string;
  readonly leaseTransitions: number;
}

export interface Lease {
  readonly resourceVersion: string;
  readonly spec: LeaseSpec;
}

/** Reads and writes one Lease; `update` must fail with Conflict if the Lease changed since `prev`. */
export interface LeaseClient {
  get(): Promise<Result<Lease | null>>;
  create(spec: LeaseSpec): Promise<Result<Lease>>;
  update(prev: Lease, spec: LeaseSpec): Promise<Result<Lease>>;
}

const leases = { group: "coordination.k8s.io", version: "v1", plural: "leases" } as const;

export function restLeaseClient(kc: KubeConfig, namespace: string, name: string, timeoutMs = 10_000): LeaseClient {
  const rest = RestClient.for(kc);
  const path = resourcePath(leases, namespace, name);
  const body = (spec: LeaseSpec, resourceVersion?: string): object => ({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name, namespace, ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
    spec,
  });
  const parsed = (r: Result<unknown>): Result<Lease> => {
    if (!r.ok) return r;
    const lease = parseLease(r.value);
    return lease === undefined ? failed({ type: "Transient", status: 0, reason: "", message: `malformed Lease ${namespace}/${name}` }) : ok(lease);
  };
  return {
    get: async () => {
      const r = await rest.request({ method: "GET", path, timeoutMs });
      if (!r.ok && r.error.type === "NotFound") return ok(null);
      return parsed(r);
    },
    create: async (spec) => parsed(await rest.request({ method: "POST", path: resourcePath(leases, namespace), body: body(spec), timeoutMs })),
    update: async (prev, spec) => parsed(await rest.request({ method: "PUT", path, body: body(spec, prev.resourceVersion), timeoutMs })),
  };
}

function parseLease(v: unknown): Lease | undefined {
  if (!isRecord(v) || !isRecord(v["metadata"])) return undefined;
  const rv = v["metadata"]["resourceVersion"];
  if (typeof rv !== "string") return undefined;
  const s = isRecord(v["spec"]) ? v["spec"] : {};
  const str = (k: string): string => (typeof s[k] === "string" ? s[k] : "");
  const num = (k: string): number => (typeof s[k] === "number" ? s[k] : 0);
  return {
    resourceVersion: rv,
    spec: {
      holderIdentity: str("holderIdentity"),
      leaseDurationSeconds: num("leaseDurationSeconds"),
      acquireTime: str("acquireTime"),
      renewTime: str("renewTime"),
      leaseTransitions: num("leaseTransitions"),
    },
  };
}

/** Pod name (POD_NAME from the downward API, else the hostname) plus a random suffix, so a restart is a new candidate. */
export function defaultIdentity(podName = process.env["POD_NAME"] ?? hostname()): string {
  return `${podName}_${randomUUID().slice(0, 8)}`;
}

export type StoppedReason = "lost" | "stopped";

export interface LeaderCallbacks {
  /** Start the leader's work; stop it when `signal` aborts. A returned promise is awaited on stop() before release. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called once, if this candidate led. On "lost" the process should exit. */
  onStoppedLeading(reason: StoppedReason): void;
  /** Whenever the observed holder changes (including to ourselves). */
  onNewLeader?(identity: string): void;
}

export interface LeaderElectionOptions {
  readonly leases: LeaseClient;
  readonly identity: string;
  readonly callbacks: LeaderCallbacks;
  /** Written to the Lease in whole seconds. Default 15 s. */
  readonly leaseDurationMs?: number;
  /** Default 10 s. */
  readonly renewDeadlineMs?: number;
  /** Default 2 s; candidates jitter it by up to 1.2x. */
  readonly retryPeriodMs?: number;
  /** Release the Lease on stop() so a standby need not wait for expiry. Default true. */
  readonly releaseOnStop?: boolean;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly log?: Logger;
}

type Attempt = { readonly type: "Acquired" } | { readonly type: "HeldBy"; readonly holder: string } | { readonly type: "Failed"; readonly error: ApiError };

const jitterFactor = 1.2;

function microTime(ms: number): string {
  // metav1.MicroTime wants exactly six fractional digits.
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}

export class LeaderElector {
  readonly identity: string;
  private readonly o: LeaderElectionOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  private finished = false;
  /** The Lease as last read or written, and when (our clock) its record last changed. */
  private observed: Lease | undefined;
  private observedAt = 0;
  private reportedLeader = "";
  private leading = false;
  /**
   * Start time of the last successful acquire or renew. Invariant: while
   * isLeader(), now < renewedAt + renewDeadline < the earliest time another
   * candidate may consider the Lease expired.
   */
  private renewedAt = 0;

  constructor(o: LeaderElectionOptions) {
    this.o = o;
    this.identity = o.identity;
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
    this.log = o.log ?? silentLogger;
    const leaseMs = o.leaseDurationMs ?? 15_000;
    this.leaseDurationSeconds = Math.ceil(leaseMs / 1000);
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    // client-go's validation: without these margins the safety argument above fails.
    if (!(this.leaseDurationSeconds * 1000 > this.renewDeadlineMs)) throw new Error("leaderelection: leaseDuration must exceed renewDeadline");
    if (!(this.renewDeadlineMs > jitterFactor * this.retryPeriodMs)) throw new Error("leaderelection: renewDeadline must exceed 1.2 x retryPeriod");
    if (o.identity === "") throw new Error("leaderelection: identity is required");
  }

  isLeader(): boolean {
    return this.leading && this.clock.now() < this.renewedAt + this.renewDeadlineMs;
  }

  /** The holder we last observed ("" if none). */
  getLeader(): string {
    return this.reportedLeader;
  }

  /** Campaigns, then leads until the lease is lost or stop() is called. Resolves when finished. */
  run(): Promise<void> {
    if (this.running !== undefined) throw new Error("leaderelection: run() called twice");
    this.running = this.campaign().finally(() => {
      this.finished = true;
    });
    return this.running;
  }

  /** Stops campaigning or leading; if leading, drains the leader's work and releases the Lease. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async campaign(): Promise<void> {
    for (;;) {
      if (this.stopped()) return;
      const started = this.clock.now();
      const a = await this.tryAcquireOrRenew();
      if (a.type === "Acquired") {
        this.renewedAt = started;
        break;
      }
      if (a.type === "Failed") this.log.warn({ identity: this.identity, error: a.error }, "could not acquire the lease");
      await sleep(this.clock, this.retryPeriodMs * (1 + this.random() * jitterFactor), this.stopping.signal);
    }

    if (this.stopped()) {
      // stop() arrived while we were acquiring: hand the Lease straight back.
      if (this.o.releaseOnStop !== false) await this.release();
      return;
    }
    this.leading = true;
    this.log.info({ identity: this.identity }, "started leading");
    const lead = new AbortController();
    const work = Promise.resolve()
      .then(() => this.o.callbacks.onStartedLeading(lead.signal))
      .catch((e: unknown) => {
        this.log.error({ identity: this.identity, err: e }, "leader work failed");
      });

    let reason: StoppedReason = "stopped";
    while (!this.stopped()) {
      await sleep(this.clock, this.retryPeriodMs, this.stopping.signal);
      if (this.stopped()) break;
      if (!(await this.renew())) {
        reason = "lost";
        break;
      }
    }

    const deadline = this.renewedAt + this.renewDeadlineMs;
    this.leading = false;
    lead.abort();
    if (reason === "stopped" && this.o.releaseOnStop !== false) {
      // Release only once our work has stopped, or a successor could overlap with it.
      const drained = await within(this.clock, work.then(() => true), deadline - this.clock.now());
      if (drained === true) await this.release();
      else this.log.warn({ identity: this.identity }, "leader work outlived the renew deadline; not releasing, the lease will expire");
    }
    this.log.info({ identity: this.identity, reason }, "stopped leading");
    this.call(() => {
      this.o.callbacks.onStoppedLeading(reason);
    });
  }

  /** Renews until success (true), or false once renewDeadline has passed or someone else holds the Lease. */
  private async renew(): Promise<boolean> {
    const deadline = this.renewedAt + this.renewDeadlineMs;
    for (;;) {
      const started = this.clock.now();
      if (started >= deadline) return false;
      // A request may hang; the deadline does not wait for it.
      const a = await within(this.clock, this.tryAcquireOrRenew(), deadline - started);
      if (a === undefined) return false;
      switch (a.type) {
        case "Acquired":
          this.renewedAt = started;
          return true;
        case "HeldBy":
          this.log.warn({ identity: this.identity, holder: a.holder }, "lease taken over");
          return false;
        case "Failed":
          this.log.warn({ identity: this.identity, error: a.error }, "lease renewal failed");
          await sleep(this.clock, Math.min(this.retryPeriodMs, deadline - this.clock.now()), this.stopping.signal);
          if (this.stopped()) return true; // stop() takes it from here
      }
    }
  }

  /** One read, and if the Lease is ours to take or keep, one optimistic write. */
  private async tryAcquireOrRenew(): Promise<Attempt> {
    const now = this.clock.now();
    const got = await this.o.leases.get();
    if (!got.ok) return { type: "Failed", error: got.error };
    const current = got.value;
    if (current === null) {
      const created = await this.o.leases.create({
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationSeconds,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: 0,
      });
      if (!created.ok) return { type: "Failed", error: created.error };
      this.observe(created.value, now);
      return { type: "Acquired" };
    }
    // Observed when the answer arrived, not when we asked: expiry must not be judged early.
    this.observe(current, this.clock.now());
    const s = current.spec;
    if (s.holderIdentity !== "" && s.holderIdentity !== this.identity && this.clock.now() < this.observedAt + s.leaseDurationSeconds * 1000) {
      return { type: "HeldBy", holder: s.holderIdentity };
    }
    const renewing = s.holderIdentity === this.identity;
    const updated = await this.o.leases.update(current, {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseDurationSeconds,
      acquireTime: renewing && s.acquireTime !== "" ? s.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: renewing ? s.leaseTransitions : s.leaseTransitions + 1,
    });
    if (!updated.ok) return { type: "Failed", error: updated.error };
    this.observe(updated.value, now);
    return { type: "Acquired" };
  }

  private async release(): Promise<void> {
    const lease = this.observed;
    if (lease?.spec.holderIdentity !== this.identity) return;
    const now = this.clock.now();
    const r = await this.o.leases.update(lease, {
      holderIdentity: "",
      leaseDurationSeconds: 1,
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: lease.spec.leaseTransitions,
    });
    if (r.ok) this.observe(r.value, now);
    else this.log.warn({ identity: this.identity, error: r.error }, "could not release the lease");
  }

  private observe(lease: Lease, now: number): void {
    const prev = this.observed?.spec;
    const s = lease.spec;
    const changed = prev?.holderIdentity !== s.holderIdentity || prev.renewTime !== s.renewTime || prev.acquireTime !== s.acquireTime
      || prev.leaseDurationSeconds !== s.leaseDurationSeconds || prev.leaseTransitions !== s.leaseTransitions;
    this.observed = lease;
    if (changed) this.observedAt = now;
    if (s.holderIdentity !== "" && s.holderIdentity !== this.reportedLeader && !this.finished) {
      this.reportedLeader = s.holderIdentity;
      const leader = s.holderIdentity;
      this.call(() => this.o.callbacks.onNewLeader?.(leader));
    }
  }

  private call(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.log.error({ identity: this.identity, err: e }, "leader election callback threw");
    }
  }
}

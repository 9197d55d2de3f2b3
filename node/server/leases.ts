// Lease deadlines. The store knows which leases exist and their TTLs; time
// lives here. Every member tracks a deadline per lease, reset when a grant
// or keepalive is applied. Only the leader acts: when a lease's deadline
// passes it proposes the revoke through the log, so every member deletes
// the lease's keys at the same revision. A new leader gives every lease a
// full TTL again (as etcd does), since it cannot know how long the old
// leader's clock had run.

import type { LeaseId, LeaseInfo } from "../kv/index.ts";

export class LeaseClock {
  private readonly deadlines = new Map<LeaseId, number>();
  private readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  /** A grant or keepalive was applied. */
  touch(id: LeaseId, ttlSeconds: number): void {
    this.deadlines.set(id, this.now() + ttlSeconds * 1000);
  }

  forget(id: LeaseId): void {
    this.deadlines.delete(id);
  }

  /** Aligns the deadlines with the leases that exist, giving new ones a full TTL. */
  sync(leases: readonly LeaseInfo[], refreshAll: boolean): void {
    const live = new Set<LeaseId>();
    for (const l of leases) {
      live.add(l.id);
      if (refreshAll || !this.deadlines.has(l.id)) this.touch(l.id, l.ttlSeconds);
    }
    for (const id of [...this.deadlines.keys()]) if (!live.has(id)) this.deadlines.delete(id);
  }

  /** Seconds left, or null if the lease is unknown here. */
  remaining(id: LeaseId): number | null {
    const d = this.deadlines.get(id);
    return d === undefined ? null : Math.max(0, (d - this.now()) / 1000);
  }

  expired(): LeaseId[] {
    const t = this.now();
    const out: LeaseId[] = [];
    for (const [id, d] of this.deadlines) if (d <= t) out.push(id);
    return out;
  }
}

// Lease clients for leader-election tests: an in-memory one with the apiserver's
// optimistic concurrency, and a wrapper that can stall a candidate's writes.

import type { ApiError, Result } from "../errors.ts";
import type { Lease, LeaseClient, LeaseSpec } from "../leaderelection.ts";

const conflict: ApiError = { type: "Conflict", status: 409, reason: "Conflict", message: "the object has been modified" };

/** One Lease in memory; every client shares it. */
export class MemoryLeaseStore {
  lease: Lease | null = null;
  private version = 0;

  client(): LeaseClient {
    return {
      get: () => Promise.resolve({ ok: true, value: this.lease }),
      create: (spec) => {
        if (this.lease !== null) return Promise.resolve({ ok: false, error: { ...conflict, reason: "AlreadyExists" } });
        return Promise.resolve({ ok: true, value: this.write(spec) });
      },
      update: (prev, spec) => {
        if (this.lease?.resourceVersion !== prev.resourceVersion) return Promise.resolve({ ok: false, error: conflict });
        return Promise.resolve({ ok: true, value: this.write(spec) });
      },
    };
  }

  private write(spec: LeaseSpec): Lease {
    this.lease = { resourceVersion: String(++this.version), spec };
    return this.lease;
  }
}

/**
 * Wraps a client so that, while frozen, update() calls wait (as in a process
 * pause or a partition after the read) and are sent only on thaw. Records the
 * outcome of every update.
 */
export class FreezableLeaseClient implements LeaseClient {
  readonly updates: Result<Lease>[] = [];
  private readonly inner: LeaseClient;
  private gate: Promise<void> | undefined;
  private open: () => void = () => undefined;

  constructor(inner: LeaseClient) {
    this.inner = inner;
  }

  freeze(): void {
    this.gate = new Promise((r) => (this.open = r));
  }

  thaw(): void {
    this.gate = undefined;
    this.open();
  }

  get(): Promise<Result<Lease | null>> {
    return this.inner.get();
  }

  create(spec: LeaseSpec): Promise<Result<Lease>> {
    return this.inner.create(spec);
  }

  async update(prev: Lease, spec: LeaseSpec): Promise<Result<Lease>> {
    if (this.gate !== undefined) await this.gate;
    const r = await this.inner.update(prev, spec);
    this.updates.push(r);
    return r;
  }
}

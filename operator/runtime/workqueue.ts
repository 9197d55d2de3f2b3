// A work queue of object keys ("namespace/name"), with client-go's semantics:
//
// - A key added while it waits is stored once (dirty set).
// - A key added while a worker processes it is not handed to a second worker;
//   it is queued again when that worker calls done(key). So a key is never
//   processed concurrently, and a change during processing is never lost.
// - addAfter and addRateLimited delay an add; an earlier deadline for the
//   same key replaces a later one.
//
// Reconcile is level-triggered, so dropping queued keys at shutdown is safe: the
// next leader lists everything again.

import { systemClock } from "./clock.ts";
import type { Clock, Timer } from "./clock.ts";
import { defaultControllerRateLimiter } from "./ratelimiter.ts";
import type { RateLimiter } from "./ratelimiter.ts";

export interface WorkQueueOptions {
  readonly clock?: Clock;
  /** Default: defaultControllerRateLimiter (5 ms..5 min per key, 10 qps / burst 100 overall). */
  readonly rateLimiter?: RateLimiter;
}

export class WorkQueue {
  private readonly clock: Clock;
  private readonly limiter: RateLimiter;
  /** FIFO of keys ready to hand out; `head` skips consumed slots without shifting. */
  private queue: string[] = [];
  private head = 0;
  /**
   * Keys that need processing. Invariant: every key in `queue` is in `dirty`;
   * a key in both `dirty` and `processing` is not in `queue` (done() requeues it).
   */
  private readonly dirty = new Set<string>();
  /** Keys handed to a worker and not yet done(). */
  private readonly processing = new Set<string>();
  /** Delayed adds: one timer per key, for its earliest deadline. */
  private readonly waiting = new Map<string, { readonly at: number; readonly timer: Timer }>();
  /** get() callers parked until a key arrives or shutdown. */
  private readonly getters: ((key: string | null) => void)[] = [];
  private readonly drainers: (() => void)[] = [];
  private shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.limiter = opts.rateLimiter ?? defaultControllerRateLimiter(this.clock);
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.dispatch();
  }

  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + ms;
    const existing = this.waiting.get(key);
    if (existing !== undefined) {
      if (existing.at <= at) return;
      existing.timer.cancel();
    }
    const timer = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { at, timer });
  }

  /** Requeue after the rate limiter's delay for this key (one more failure). */
  addRateLimited(key: string): void {
    this.addAfter(key, this.limiter.when(key));
  }

  /** The key succeeded: reset its backoff. Does not remove it from the queue. */
  forget(key: string): void {
    this.limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.limiter.numRequeues(key);
  }

  /** The next key to process, or null once the queue is shut down. Call done(key) after. */
  get(): Promise<string | null> {
    if (this.shuttingDown) return Promise.resolve(null);
    const key = this.take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(key: string): void {
    if (!this.processing.delete(key)) throw new Error(`workqueue: done(${key}) for a key that is not being processed`);
    if (this.dirty.has(key) && !this.shuttingDown) {
      this.queue.push(key);
      this.dispatch();
    }
    if (this.processing.size === 0) for (const d of this.drainers.splice(0)) d();
  }

  /** Keys ready to be handed out (not those being processed or delayed). */
  len(): number {
    return this.queue.length - this.head;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops handing out keys: parked and future get() calls return null, delayed adds are dropped. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const w of this.waiting.values()) w.timer.cancel();
    this.waiting.clear();
    this.queue = [];
    this.head = 0;
    this.dirty.clear();
    for (const g of this.getters.splice(0)) g(null);
  }

  /** shutDown, then wait until every key handed out has been done(). */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainers.push(resolve));
  }

  private take(): string | undefined {
    if (this.head >= this.queue.length) return undefined;
    const key = this.queue[this.head++];
    if (key === undefined) throw new Error("workqueue: hole in the queue");
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }

  private dispatch(): void {
    while (this.getters.length > 0) {
      const key = this.take();
      if (key === undefined) return;
      const getter = this.getters.shift();
      getter?.(key);
    }
  }
}

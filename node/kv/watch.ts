// Watches, and waiting for the store to reach a revision or applied index.
//
// A watcher sees every event on its key or prefix from its start revision
// on, in revision order, with no gaps and no duplicates. It is in one of
// three modes:
//
//   unsynced  behind the store: each poll reads the next events from the
//             store's history (no copy, no buffer), at most maxScanPerPoll
//             events examined per poll. When it reaches the head it
//             becomes synced, within the same synchronous call, so no event
//             can slip between history and live delivery.
//   synced    caught up: apply pushes matching events into its buffer. If
//             the buffer outgrows its limits the watcher is ended with
//             SlowConsumer and the revision to resume from; a new watch from
//             there catches up from history without buffering.
//   ended     cancelled, compacted past, or cut off; poll says why.
//
// Synced watchers are indexed by key and by prefix, so an event costs one
// map lookup per distinct prefix length in use, not one test per watcher.
//
// Nothing here uses timers or promises. The server polls and is told when
// to: onReady runs (synchronously, inside apply) when a watcher that had
// nothing to read gets something, or ends. Listeners must not call apply.

import type { KvObserver, KvStore } from "./store.ts";
import { validateKey, validatePrefix } from "./key.ts";
import type { Compacted, KvEvent, Revision } from "./types.ts";
import { ThresholdWaiters } from "./waiters.ts";

export type WatchSelector = { readonly key: string } | { readonly prefix: string };

export interface WatchLimits {
  /** Events a synced watcher may hold unread before it is cut off. */
  readonly maxBufferedEvents: number;
  /** Approximate bytes (keys and values, prevKv included) it may hold unread. */
  readonly maxBufferedBytes: number;
  /** History events an unsynced watcher examines per poll: bounds the work of one poll. */
  readonly maxScanPerPoll: number;
}

export const defaultWatchLimits: WatchLimits = {
  maxBufferedEvents: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxScanPerPoll: 10_000,
};

/** The default for poll's maxEvents. */
export const defaultPollEvents = 1000;

export type WatchEnd =
  | { readonly type: "Cancelled" }
  /** History the watcher still needed was compacted; it cannot resume without a gap. */
  | Compacted
  | {
      readonly type: "SlowConsumer";
      /** Watch again from here to continue without a gap. */
      readonly resumeRevision: Revision;
      readonly bufferedEvents: number;
      readonly bufferedBytes: number;
    };

export type WatchPoll =
  | {
      readonly type: "events";
      /** Whole revisions: the events of one revision are never split across polls. */
      readonly events: readonly KvEvent[];
      /** True: more is readable now, poll again (onReady will not fire meanwhile). */
      readonly more: boolean;
    }
  | { readonly type: "ended"; readonly reason: WatchEnd };

export interface WatchOptions {
  /**
   * The first revision to report. Absent: the next one (store.revision + 1).
   * At or below the compaction point: the watch is refused with Compacted.
   * Beyond the next revision: events start there.
   */
  readonly fromRevision?: Revision;
  /** Called when there is something new to poll (see the module comment). */
  readonly onReady?: () => void;
}

export type WatchStart =
  | { readonly ok: true; readonly watcher: Watcher }
  | { readonly ok: false; readonly error: Compacted | { readonly type: "InvalidRequest"; readonly reason: string } };

export interface Watcher {
  /** Unique within its hub, in creation order. */
  readonly id: number;
  readonly selector: WatchSelector;
  /** The first revision not yet delivered by poll: where a new watch would resume. */
  readonly nextRevision: Revision;
  /** Why the watcher ended, or null while it runs. */
  readonly ended: WatchEnd | null;
  /**
   * The next events, at most maxEvents of them unless a single revision
   * holds more (a revision is never split). After creation, poll until
   * `more` is false; then wait for onReady.
   */
  poll(maxEvents?: number): WatchPoll;
  /** Stops the watcher; onReady is not called for it. */
  cancel(): void;
}

const eventBytes = (e: KvEvent): number =>
  2 * e.kv.key.length + e.kv.value.length + (e.prevKv === undefined ? 0 : e.prevKv.value.length) + 64;

type Mode = "unsynced" | "synced" | "ended";

class HubWatcher implements Watcher {
  readonly id: number;
  readonly selector: WatchSelector;
  private readonly core: HubCore;
  private readonly onReady: (() => void) | null;
  mode: Mode;
  /** unsynced: the next revision to read from history. synced: events below it are ignored (a future start). */
  cursor: Revision;
  private buffer: KvEvent[] = [];
  private head = 0;
  private bytes = 0;
  /** Whether onReady should run on the next arrival. */
  private armed: boolean;
  private end: WatchEnd | null = null;
  /** nextRevision as of the end (the store moves on; the watcher does not). */
  private frozenNext: Revision | null = null;
  /** Set while apply dispatches to it. */
  touched = false;

  constructor(core: HubCore, id: number, selector: WatchSelector, from: Revision, onReady: (() => void) | null) {
    this.core = core;
    this.id = id;
    this.selector = selector;
    this.onReady = onReady;
    this.cursor = from;
    this.mode = from > core.store.revision ? "synced" : "unsynced";
    this.armed = this.mode === "synced"; // armed iff there is nothing to read yet
  }

  get ended(): WatchEnd | null {
    return this.end;
  }

  get nextRevision(): Revision {
    if (this.frozenNext !== null) return this.frozenNext;
    const first = this.buffer[this.head];
    if (first !== undefined) return first.revision;
    if (this.mode === "synced") return Math.max(this.cursor, this.core.store.revision + 1);
    return this.cursor;
  }

  get buffered(): number {
    return this.buffer.length - this.head;
  }

  matches(key: string): boolean {
    return "key" in this.selector ? key === this.selector.key : key.startsWith(this.selector.prefix);
  }

  poll(maxEvents = defaultPollEvents): WatchPoll {
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) throw new Error(`poll: maxEvents ${maxEvents} is not a positive integer`);
    if (this.end !== null) return { type: "ended", reason: this.end };
    return this.mode === "synced" ? this.pollBuffer(maxEvents) : this.pollHistory(maxEvents);
  }

  cancel(): void {
    if (this.end !== null) return;
    this.finish({ type: "Cancelled" }, false);
  }

  /** Apply's delivery to a synced watcher. */
  offer(e: KvEvent, touched: HubWatcher[]): void {
    if (e.revision < this.cursor) return;
    this.buffer.push(e);
    this.bytes += eventBytes(e);
    if (!this.touched) {
      this.touched = true;
      touched.push(this);
    }
  }

  /** After apply's delivery: enforce the limits, then tell the server. */
  settle(): void {
    this.touched = false;
    if (this.mode === "ended") return; // cancelled by an earlier listener of this same apply
    const limits = this.core.limits;
    const first = this.buffer[this.head];
    if (first !== undefined && (this.buffered > limits.maxBufferedEvents || this.bytes > limits.maxBufferedBytes)) {
      this.finish({ type: "SlowConsumer", resumeRevision: first.revision, bufferedEvents: this.buffered, bufferedBytes: this.bytes }, true);
      return;
    }
    this.notify();
  }

  /** Ends the watcher, releasing its buffer. */
  finish(reason: WatchEnd, notify: boolean): void {
    this.frozenNext = this.nextRevision;
    this.core.remove(this);
    this.mode = "ended";
    this.end = reason;
    this.buffer = [];
    this.head = 0;
    this.bytes = 0;
    if (notify) this.notify();
  }

  /** Back to catching up from history (the hub's store was replaced). */
  demote(previousRevision: Revision): void {
    const first = this.buffer[this.head];
    this.cursor = first !== undefined ? first.revision : Math.max(this.cursor, previousRevision + 1);
    this.buffer = [];
    this.head = 0;
    this.bytes = 0;
    this.mode = "unsynced";
  }

  notify(): void {
    if (!this.armed) return;
    this.armed = false;
    this.onReady?.();
  }

  private pollBuffer(max: number): WatchPoll {
    const buf = this.buffer;
    const out: KvEvent[] = [];
    let i = this.head;
    while (i < buf.length) {
      const r = buf[i]?.revision;
      let j = i;
      while (j < buf.length && buf[j]?.revision === r) j++;
      if (out.length > 0 && out.length + (j - i) > max) break;
      for (let k = i; k < j; k++) {
        const e = buf[k];
        if (e === undefined) break;
        out.push(e);
        this.bytes -= eventBytes(e);
      }
      i = j;
      if (out.length >= max) break;
    }
    this.head = i;
    if (i === buf.length) {
      this.buffer = [];
      this.head = 0;
    } else if (i > 1024 && 2 * i > buf.length) {
      this.buffer = buf.slice(i);
      this.head = 0;
    }
    const more = this.buffered > 0;
    this.armed = !more;
    return { type: "events", events: out, more };
  }

  private pollHistory(max: number): WatchPoll {
    const store = this.core.store;
    if (this.cursor <= store.compactRevision) {
      const reason: WatchEnd = { type: "Compacted", compactRevision: store.compactRevision };
      this.finish(reason, false);
      return { type: "ended", reason };
    }
    const log = store.history;
    const n = log.length;
    const out: KvEvent[] = [];
    let i = log.lowerBound(this.cursor);
    let scanned = 0;
    while (i < n) {
      const r = log.at(i).revision;
      const mark = out.length;
      let j = i;
      for (; j < n; j++) {
        const e = log.at(j);
        if (e.revision !== r) break;
        if (this.matches(e.kv.key)) out.push(e);
      }
      if (mark > 0 && out.length > max) {
        out.length = mark; // this revision does not fit; it comes first next time
        break;
      }
      scanned += j - i;
      i = j;
      this.cursor = r + 1;
      if (out.length >= max || scanned >= this.core.limits.maxScanPerPoll) break;
    }
    if (i >= n) {
      // Caught up: from now on apply delivers.
      this.cursor = Math.max(this.cursor, store.revision + 1);
      this.core.promote(this);
    }
    const more = this.mode !== "synced";
    this.armed = !more;
    return { type: "events", events: out, more };
  }
}

/** The hub's state, shared with its watchers. */
class HubCore {
  store: KvStore;
  readonly limits: WatchLimits;
  private readonly byKey = new Map<string, Set<HubWatcher>>();
  private readonly byPrefix = new Map<string, Set<HubWatcher>>();
  /** Distinct lengths of the prefixes in byPrefix, ascending. */
  private prefixLengths: number[] = [];
  readonly unsynced = new Set<HubWatcher>();
  synced = 0;

  constructor(store: KvStore, limits: WatchLimits) {
    this.store = store;
    this.limits = limits;
  }

  promote(w: HubWatcher): void {
    this.unsynced.delete(w);
    w.mode = "synced";
    this.index(w);
  }

  index(w: HubWatcher): void {
    const [map, k] = "key" in w.selector ? [this.byKey, w.selector.key] : [this.byPrefix, w.selector.prefix];
    let set = map.get(k);
    if (set === undefined) {
      set = new Set();
      map.set(k, set);
      if (map === this.byPrefix) this.updateLengths();
    }
    set.add(w);
    this.synced++;
  }

  remove(w: HubWatcher): void {
    if (w.mode === "unsynced") {
      this.unsynced.delete(w);
      return;
    }
    if (w.mode !== "synced") return;
    const [map, k] = "key" in w.selector ? [this.byKey, w.selector.key] : [this.byPrefix, w.selector.prefix];
    const set = map.get(k);
    if (set?.delete(w) !== true) throw new Error(`watch: watcher ${w.id} missing from its index`);
    this.synced--;
    if (set.size === 0) {
      map.delete(k);
      if (map === this.byPrefix) this.updateLengths();
    }
  }

  private updateLengths(): void {
    this.prefixLengths = [...new Set([...this.byPrefix.keys()].map((p) => p.length))].sort((a, b) => a - b);
  }

  dispatch(events: readonly KvEvent[]): void {
    const touched: HubWatcher[] = [];
    for (const e of events) {
      const key = e.kv.key;
      const exact = this.byKey.get(key);
      if (exact !== undefined) for (const w of exact) w.offer(e, touched);
      for (const len of this.prefixLengths) {
        if (len > key.length) break;
        const set = this.byPrefix.get(len === key.length ? key : key.slice(0, len));
        if (set !== undefined) for (const w of set) w.offer(e, touched);
      }
    }
    for (const w of touched) w.settle();
  }

  allSynced(): HubWatcher[] {
    const out: HubWatcher[] = [];
    for (const set of this.byKey.values()) out.push(...set);
    for (const set of this.byPrefix.values()) out.push(...set);
    return out;
  }
}

export class WatchHub implements KvObserver {
  private readonly core: HubCore;
  private readonly revisionWaiters = new ThresholdWaiters();
  private readonly appliedWaiters = new ThresholdWaiters();
  private nextId = 1;
  private compactSeen: Revision;

  constructor(store: KvStore, limits: Partial<WatchLimits> = {}) {
    const l: WatchLimits = { ...defaultWatchLimits, ...limits };
    for (const [name, v] of Object.entries(l)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`watch limit ${name} = ${v} is not a positive integer`);
    }
    this.core = new HubCore(store, l);
    this.compactSeen = store.compactRevision;
    store.setObserver(this);
  }

  get store(): KvStore {
    return this.core.store;
  }

  /** Running watchers. */
  get watcherCount(): number {
    return this.core.synced + this.core.unsynced.size;
  }

  get syncedWatchers(): number {
    return this.core.synced;
  }

  /** Watchers catching up from history. */
  get unsyncedWatchers(): number {
    return this.core.unsynced.size;
  }

  /** Pending whenRevision and whenApplied callbacks. */
  get waiterCount(): number {
    return this.revisionWaiters.size + this.appliedWaiters.size;
  }

  watch(selector: WatchSelector, options: WatchOptions = {}): WatchStart {
    const bad = "key" in selector ? validateKey(selector.key) : validatePrefix(selector.prefix);
    if (bad !== null) return { ok: false, error: { type: "InvalidRequest", reason: bad.message } };
    const store = this.core.store;
    const from = options.fromRevision ?? store.revision + 1;
    if (!Number.isSafeInteger(from) || from < 1) {
      return { ok: false, error: { type: "InvalidRequest", reason: `fromRevision ${from} is not a positive integer` } };
    }
    if (from <= store.compactRevision) return { ok: false, error: { type: "Compacted", compactRevision: store.compactRevision } };
    // Copy the selector: the caller's object must not be able to move the watcher in the index.
    const sel: WatchSelector = "key" in selector ? { key: selector.key } : { prefix: selector.prefix };
    const w = new HubWatcher(this.core, this.nextId++, sel, from, options.onReady ?? null);
    if (w.mode === "synced") this.core.index(w);
    else this.core.unsynced.add(w);
    return { ok: true, watcher: w };
  }

  /**
   * Runs fn once the store's revision is >= n, synchronously inside the
   * apply that reaches it. Returns a cancel function, or null if the
   * revision is already reached (fn will not run).
   */
  whenRevision(n: Revision, fn: () => void): (() => void) | null {
    return this.core.store.revision >= n ? null : this.revisionWaiters.add(n, fn);
  }

  /** As whenRevision, for the applied log index (linearizable reads wait for their ReadIndex). */
  whenApplied(index: number, fn: () => void): (() => void) | null {
    return this.core.store.appliedIndex >= index ? null : this.appliedWaiters.add(index, fn);
  }

  /** Ends every watcher (Cancelled, without onReady) and drops every waiter. For shutdown. */
  close(): void {
    for (const w of [...this.core.unsynced, ...this.core.allSynced()]) w.cancel();
    this.revisionWaiters.clear();
    this.appliedWaiters.clear();
  }

  /** @see KvObserver */
  afterApply(store: KvStore, events: readonly KvEvent[]): void {
    if (store !== this.core.store) throw new Error("WatchHub: apply on a store it no longer watches");
    if (events.length > 0) this.core.dispatch(events);
    if (store.compactRevision !== this.compactSeen) this.compacted();
    this.revisionWaiters.fire(store.revision);
    this.appliedWaiters.fire(store.appliedIndex);
  }

  /**
   * Moves the hub to a store restored from a snapshot (the node installed
   * one). Watchers go back to catching up from the new store's history,
   * which continues the old one's; those whose next revision it has
   * compacted end with Compacted. Waiters the new store satisfies run.
   */
  replaceStore(store: KvStore): void {
    const old = this.core.store;
    if (store === old) return;
    if (store.revision < old.revision) throw new Error(`WatchHub: new store at revision ${store.revision} is behind ${old.revision}`);
    old.setObserver(null);
    store.setObserver(this);
    const synced = this.core.allSynced();
    for (const w of synced) this.core.remove(w);
    this.core.store = store;
    for (const w of synced) {
      w.demote(old.revision);
      this.core.unsynced.add(w);
    }
    this.compacted();
    for (const w of this.core.unsynced) w.notify();
    this.revisionWaiters.fire(store.revision);
    this.appliedWaiters.fire(store.appliedIndex);
  }

  private compacted(): void {
    const c = this.core.store.compactRevision;
    this.compactSeen = c;
    for (const w of [...this.core.unsynced]) {
      if (w.cursor <= c) w.finish({ type: "Compacted", compactRevision: c }, true);
    }
  }
}

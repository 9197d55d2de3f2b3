// A typed informer: a local cache of one kind of object, kept current by
// list+watch, that calls add/update/delete handlers as it changes.
//
// Why not @kubernetes/client-node's makeInformer/ListWatch (2.0.1, dist/cache.js
// and dist/watch.js)? What it does by itself: it re-lists on 410 Gone (an HTTP 410,
// or an ERROR event with code 410 followed by the server closing the stream); it
// re-watches from the last resourceVersion when a watch closes normally (backoff
// 1 s doubling to 30 s, reset by any event); and its Watch aborts a stream after
// 30 s without data (fixed: requestTimeoutMs is private) and reconnects at once.
// What it does not: any other failure (a failed list, connection refused, 403, 500)
// goes to the 'error' handlers and the informer stops for good; stop() during a
// list still opens a watch afterwards; there is no "synced" signal; it does not ask
// for bookmarks; and list items come back as client-node model classes (Date
// timestamps, renamed fields) while watch events are raw JSON, so its cache mixes
// two shapes. So we list and watch ourselves (rest.ts) and add:
//
// - retry of every failure, list or watch, with jittered exponential backoff;
// - re-list on 410 Gone, at once (no backoff), emitting deletes for objects that
//   vanished meanwhile and updates for ones that changed;
// - allowWatchBookmarks, so quiet watches still advance their resourceVersion
//   (kube-apiserver 1.37 sent the first BOOKMARK on an idle watch after ~2 min);
// - a server-side timeoutSeconds in [t, 2t) (client-go: 5..10 min), so watches
//   rotate and spread out;
// - a quiet timeout (default 5 min) on our side: a watch that delivers nothing,
//   not even a bookmark, for that long is presumed hung and replaced;
// - hasSynced()/waitForSync(), and objects of one shape: wire JSON through `decode`.

import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { sleep, systemClock } from "./clock.ts";
import type { Clock } from "./clock.ts";
import { apiErrorFromResponse, isRecord, ok } from "./errors.ts";
import type { ApiError, Result } from "./errors.ts";
import { keyOf, objectKey } from "./keys.ts";
import { silentLogger } from "./logger.ts";
import type { Logger } from "./logger.ts";
import { RestClient, isWireObject, resourcePath } from "./rest.ts";
import type { GroupVersionResource, WatchEnd, WireObject } from "./rest.ts";

type Query = Readonly<Record<string, string | undefined>>;

/** How the informer reaches the apiserver; tests wrap it to drop or tamper with watches. */
export interface ListWatchTransport {
  list(path: string, query: Query, signal: AbortSignal): Promise<Result<unknown>>;
  watch(path: string, query: Query, onEvent: (event: unknown) => void, signal: AbortSignal): Promise<WatchEnd>;
}

export function restTransport(kc: KubeConfig): ListWatchTransport {
  const rest = RestClient.for(kc);
  return {
    list: (path, query, signal) => rest.request({ method: "GET", path, query, signal, timeoutMs: 60_000 }),
    watch: (path, query, onEvent, signal) => rest.watch(path, query, onEvent, signal),
  };
}

export interface InformerOptions<T extends KubernetesObject> {
  readonly kc: KubeConfig;
  readonly resource: GroupVersionResource;
  /** Omit to watch all namespaces (or a cluster-scoped kind). */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /**
   * Turns the wire JSON into T (e.g. a zod parse for a custom resource). It must
   * not throw; if it does, that object is left out of the cache and logged.
   */
  readonly decode: (obj: WireObject) => T;
  /** Replace a watch that has delivered nothing for this long. Default 5 min. */
  readonly quietTimeoutMs?: number;
  /** The server closes each watch after [t, 2t) seconds. Default 300. */
  readonly watchTimeoutSeconds?: number;
  /** Retry delay after a failure: doubles from initialMs to maxMs, jittered. Default 800 ms..30 s (client-go). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** List page size. Default 500. */
  readonly pageSize?: number;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly log?: Logger;
  readonly transport?: ListWatchTransport;
}

export interface InformerCounters {
  readonly lists: number;
  readonly watches: number;
  /** Re-lists forced by 410 Gone. */
  readonly expired: number;
  /** Watches replaced because they went quiet. */
  readonly quietRestarts: number;
  /** Failed lists and watches (each followed by a backoff). */
  readonly failures: number;
}

type WatchOutcome =
  | { readonly type: "stopped" }
  | { readonly type: "expired" }
  | { readonly type: "quiet" }
  | { readonly type: "closed"; readonly healthy: boolean }
  | { readonly type: "failed"; readonly error: ApiError };

/** A watch that ends this soon without an event is a failure, not a normal close (client-go). */
const shortWatchMs = 1000;

export class Informer<T extends KubernetesObject> {
  /** For logs and readiness reports: "configmaps" or "configmaps in ns". */
  readonly name: string;
  private readonly o: InformerOptions<T>;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly transport: ListWatchTransport;
  private readonly path: string;
  private readonly cache = new Map<string, T>();
  /** Invariant: defined only while the cache reflects the apiserver as of this version. */
  private resourceVersion: string | undefined;
  private synced = false;
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  private readonly syncWaiters = new Set<(synced: boolean) => void>();
  private readonly addHandlers = new Set<(obj: T) => void>();
  private readonly updateHandlers = new Set<(oldObj: T, newObj: T) => void>();
  private readonly deleteHandlers = new Set<(obj: T) => void>();
  private failuresInARow = 0;
  private readonly count = { lists: 0, watches: 0, expired: 0, quietRestarts: 0, failures: 0 };

  constructor(o: InformerOptions<T>) {
    this.o = o;
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
    this.log = o.log ?? silentLogger;
    this.transport = o.transport ?? restTransport(o.kc);
    this.path = resourcePath(o.resource, o.namespace);
    this.name = o.namespace === undefined ? o.resource.plural : `${o.resource.plural} in ${o.namespace}`;
  }

  start(): void {
    if (this.running !== undefined) throw new Error(`informer ${this.name}: started twice`);
    this.running = this.run().catch((e: unknown) => {
      // Only a bug gets here (every expected failure is retried inside run).
      this.log.error({ informer: this.name, err: e }, "informer loop crashed");
    });
  }

  /** Stops for good: aborts the list or watch in flight and waits for the loop to exit. */
  async stop(): Promise<void> {
    this.stopping.abort();
    for (const w of this.syncWaiters) w(false);
    this.syncWaiters.clear();
    await this.running;
  }

  /** True once the first list has been delivered to the handlers. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves true when synced, false if stopped or `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (this.stopping.signal.aborted || signal?.aborted === true) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (synced: boolean): void => {
        this.syncWaiters.delete(done);
        signal?.removeEventListener("abort", onAbort);
        resolve(synced);
      };
      const onAbort = (): void => { done(false); };
      this.syncWaiters.add(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(keyOf(namespace, name));
  }

  /** Cached objects, all or in one namespace. */
  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  /** The resourceVersion the cache is current to ("" before the first list). */
  lastSyncResourceVersion(): string {
    return this.resourceVersion ?? "";
  }

  counters(): InformerCounters {
    return { ...this.count };
  }

  /** Handlers run synchronously, in cache order; each returns its unsubscribe. */
  onAdd(h: (obj: T) => void): () => void {
    this.addHandlers.add(h);
    return () => this.addHandlers.delete(h);
  }

  onUpdate(h: (oldObj: T, newObj: T) => void): () => void {
    this.updateHandlers.add(h);
    return () => this.updateHandlers.delete(h);
  }

  /** After a re-list, the object passed is the last state the cache had (the final one is unknown). */
  onDelete(h: (obj: T) => void): () => void {
    this.deleteHandlers.add(h);
    return () => this.deleteHandlers.delete(h);
  }

  private async run(): Promise<void> {
    const stop = this.stopping.signal;
    // A call, not a property read: TypeScript would narrow `stop.aborted` across the awaits.
    const stopped = (): boolean => stop.aborted;
    while (!stopped()) {
      if (this.resourceVersion === undefined) {
        this.count.lists++;
        const listed = await this.listAll(stop);
        if (stopped()) return;
        if (!listed.ok) {
          await this.fail("list", listed.error);
          continue;
        }
        this.replace(listed.value.items);
        this.resourceVersion = listed.value.resourceVersion;
        if (!this.synced) {
          this.synced = true;
          for (const w of this.syncWaiters) w(true);
        }
      }
      const outcome = await this.watchOnce(this.resourceVersion, stop);
      switch (outcome.type) {
        case "stopped":
          return;
        case "expired":
          // The apiserver no longer has history back to our version: list again, at once.
          this.count.expired++;
          this.log.info({ informer: this.name, resourceVersion: this.resourceVersion }, "resourceVersion expired, re-listing");
          this.resourceVersion = undefined;
          break;
        case "quiet":
          this.count.quietRestarts++;
          this.log.warn({ informer: this.name, quietTimeoutMs: this.quietMs() }, "watch delivered nothing, replacing it");
          break;
        case "closed":
          if (outcome.healthy) this.failuresInARow = 0;
          else await this.fail("watch", { type: "Transient", status: 0, reason: "", message: "watch closed at once without events" });
          break;
        case "failed":
          await this.fail("watch", outcome.error);
          break;
      }
    }
  }

  private async fail(what: string, error: ApiError): Promise<void> {
    this.count.failures++;
    const d = Math.min(this.o.backoff?.maxMs ?? 30_000, (this.o.backoff?.initialMs ?? 800) * 2 ** this.failuresInARow);
    this.failuresInARow++;
    const delayMs = Math.round(d / 2 + (this.random() * d) / 2);
    this.log.warn({ informer: this.name, error, delayMs }, `${what} failed, retrying`);
    await sleep(this.clock, delayMs, this.stopping.signal);
  }

  private quietMs(): number {
    return this.o.quietTimeoutMs ?? 300_000;
  }

  private selectors(): Query {
    return { labelSelector: this.o.labelSelector, fieldSelector: this.o.fieldSelector };
  }

  /** A consistent list, page by page (continue tokens pin one resourceVersion). */
  private async listAll(signal: AbortSignal): Promise<Result<{ items: WireObject[]; resourceVersion: string }>> {
    const items: WireObject[] = [];
    let cont: string | undefined;
    for (;;) {
      const r = await this.transport.list(this.path, { ...this.selectors(), limit: String(this.o.pageSize ?? 500), continue: cont }, signal);
      if (!r.ok) return r;
      const page = r.value;
      const meta = isRecord(page) ? page["metadata"] : undefined;
      if (!isRecord(page) || !isRecord(meta) || typeof meta["resourceVersion"] !== "string" || !Array.isArray(page["items"])) {
        return { ok: false, error: { type: "Transient", status: 0, reason: "", message: `malformed list from ${this.path}` } };
      }
      // List items omit apiVersion and kind; fill them in so objects look as they do in watch events.
      const apiVersion = page["apiVersion"];
      const kind = page["kind"];
      for (const it of page["items"] as unknown[]) {
        if (!isWireObject(it)) continue;
        items.push(typeof apiVersion === "string" && typeof kind === "string" ? { apiVersion, kind: kind.replace(/List$/, ""), ...it } : it);
      }
      cont = typeof meta["continue"] === "string" && meta["continue"] !== "" ? meta["continue"] : undefined;
      if (cont === undefined) return ok({ items, resourceVersion: meta["resourceVersion"] });
    }
  }

  private async watchOnce(resourceVersion: string, stop: AbortSignal): Promise<WatchOutcome> {
    this.count.watches++;
    const mine = new AbortController();
    const signal = AbortSignal.any([stop, mine.signal]);
    let ended: WatchOutcome | undefined;
    let events = 0;
    const started = this.clock.now();
    const endWith = (o: WatchOutcome): void => {
      ended ??= o;
      mine.abort();
    };
    let quiet = this.clock.setTimeout(() => { endWith({ type: "quiet" }); }, this.quietMs());
    const t = this.o.watchTimeoutSeconds ?? 300;
    const query: Query = {
      ...this.selectors(),
      resourceVersion,
      allowWatchBookmarks: "true",
      timeoutSeconds: String(Math.floor(t + this.random() * t)),
    };
    const end = await this.transport.watch(this.path, query, (ev) => {
      // Events still in the socket buffer after we decided to end are not ours to apply.
      if (ended !== undefined || stop.aborted) return;
      events++;
      quiet.cancel();
      quiet = this.clock.setTimeout(() => { endWith({ type: "quiet" }); }, this.quietMs());
      const problem = this.apply(ev);
      if (problem !== undefined) endWith(problem);
    }, signal);
    quiet.cancel();
    if (stop.aborted) return { type: "stopped" };
    if (ended !== undefined) return ended;
    if (events > 0) this.failuresInARow = 0;
    if (end.type === "error") return end.error.status === 410 ? { type: "expired" } : { type: "failed", error: end.error };
    return { type: "closed", healthy: events > 0 || this.clock.now() - started >= shortWatchMs };
  }

  /** Applies one watch event to the cache; returns how the watch must end, if it must. */
  private apply(ev: unknown): WatchOutcome | undefined {
    const type = isRecord(ev) ? ev["type"] : undefined;
    const obj = isRecord(ev) ? ev["object"] : undefined;
    const malformed: WatchOutcome = { type: "failed", error: { type: "Transient", status: 0, reason: "", message: `malformed watch event on ${this.path}` } };
    switch (type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        if (!isWireObject(obj)) return malformed;
        if (type === "DELETED") this.remove(objectKey(obj));
        else this.upsert(obj);
        this.advance(obj);
        return undefined;
      }
      case "BOOKMARK":
        if (!isRecord(obj)) return malformed;
        this.advance(obj);
        return undefined;
      case "ERROR": {
        // A metav1.Status; 410 means our resourceVersion is older than the server's history.
        const code = isRecord(obj) && typeof obj["code"] === "number" ? obj["code"] : 0;
        if (code === 410) return { type: "expired" };
        return { type: "failed", error: apiErrorFromResponse(code, obj) };
      }
      default:
        return malformed;
    }
  }

  private advance(obj: Record<string, unknown>): void {
    const meta = obj["metadata"];
    if (isRecord(meta) && typeof meta["resourceVersion"] === "string" && meta["resourceVersion"] !== "") {
      this.resourceVersion = meta["resourceVersion"];
    }
  }

  /** Makes the cache equal to a fresh list, emitting the differences. */
  private replace(items: readonly WireObject[]): void {
    const fresh = new Set(items.map(objectKey));
    for (const key of [...this.cache.keys()]) if (!fresh.has(key)) this.remove(key);
    for (const it of items) this.upsert(it);
  }

  private upsert(wire: WireObject): void {
    let obj: T;
    try {
      obj = this.o.decode(wire);
    } catch (e) {
      this.log.error({ informer: this.name, key: objectKey(wire), err: e }, "decode threw; object left out of the cache");
      return;
    }
    const key = objectKey(wire);
    const old = this.cache.get(key);
    this.cache.set(key, obj);
    if (old === undefined) this.emit(this.addHandlers, (h) => { h(obj); });
    else if (old.metadata?.resourceVersion !== wire.metadata?.resourceVersion) this.emit(this.updateHandlers, (h) => { h(old, obj); });
  }

  private remove(key: string): void {
    const old = this.cache.get(key);
    if (old === undefined) return;
    this.cache.delete(key);
    this.emit(this.deleteHandlers, (h) => { h(old); });
  }

  private emit<H>(handlers: ReadonlySet<H>, call: (h: H) => void): void {
    for (const h of handlers) {
      try {
        call(h);
      } catch (e) {
        // A handler bug must not stop the cache from tracking the apiserver.
        this.log.error({ informer: this.name, err: e }, "event handler threw");
      }
    }
  }
}

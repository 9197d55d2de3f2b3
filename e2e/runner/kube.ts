// The runner's thin layer over @kubernetes/client-node: patch content types,
// API error matching, and informers that restart themselves.
//
// Objects in an informer's cache are kept in wire form (plain JSON: timestamps
// are strings). The client's typed list calls return Date objects where a watch
// event has strings, so lists are round-tripped through JSON to keep every
// cached object alike. Read timestamps only through `timeMs`.

import { ApiException, PatchStrategy, makeInformer, setHeaderOptions } from "@kubernetes/client-node";
import type { ConfigurationOptions, Informer, KubeConfig, KubernetesListObject, KubernetesObject, ObjectCache } from "@kubernetes/client-node";

export const mergePatch: ConfigurationOptions = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const strategicMergePatch: ConfigurationOptions = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);

/** Whether `e` is an API error with this HTTP status. */
export function isApiStatus(e: unknown, code: number): boolean {
  return e instanceof ApiException && e.code === code;
}

export function errorMessage(e: unknown): string {
  if (e instanceof ApiException) {
    const body: unknown = e.body;
    if (typeof body === "string") {
      try {
        const parsed = JSON.parse(body) as { message?: unknown };
        if (typeof parsed.message === "string") return `${e.code}: ${parsed.message}`;
      } catch {
        // Not JSON.
      }
      return `${e.code}: ${body.slice(0, 300)}`;
    }
    return `HTTP ${e.code}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Milliseconds since the epoch of an API timestamp (wire string or Date), or null. */
export function timeMs(t: Date | string | undefined | null): number | null {
  if (t === undefined || t === null) return null;
  const ms = typeof t === "string" ? Date.parse(t) : t.getTime();
  return Number.isNaN(ms) ? null : ms;
}

/** Plain JSON, as a watch event would carry it. */
export function wire<T>(x: T): T {
  return JSON.parse(JSON.stringify(x)) as T;
}

export interface RunningInformer<T extends KubernetesObject> {
  readonly cache: ObjectCache<T>;
  /** Resolves after the first list has been delivered. */
  readonly synced: Promise<void>;
  stop(): Promise<void>;
}

export interface InformerHandlers<T> {
  readonly onChange: (obj: T, deleted: boolean) => void;
  readonly log: (msg: string) => void;
}

/**
 * A list-watch informer that restarts after errors (client-node's stops on the
 * first one) and delivers every add, update and delete to `onChange`.
 */
export function startInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  h: InformerHandlers<T>,
): RunningInformer<T> {
  let resolveSynced: () => void = () => undefined;
  const synced = new Promise<void>((r) => {
    resolveSynced = r;
  });
  let stopped = false;
  const informer: Informer<T> & ObjectCache<T> = makeInformer(kc, path, async () => {
    const l = wire(await list());
    // The first list has been applied to the cache once this promise's continuation ran.
    setImmediate(resolveSynced);
    return l;
  });
  informer.on("add", (o) => {
    h.onChange(o, false);
  });
  informer.on("update", (o) => {
    h.onChange(o, false);
  });
  informer.on("delete", (o) => {
    h.onChange(o, true);
  });
  informer.on("error", (err: unknown) => {
    if (stopped) return;
    h.log(`informer ${path}: ${errorMessage(err)}; restarting`);
    setTimeout(() => {
      if (!stopped) {
        informer.start().catch((e: unknown) => {
          h.log(`informer ${path}: ${errorMessage(e)}`);
        });
      }
    }, 1000);
  });
  informer.start().catch((e: unknown) => {
    h.log(`informer ${path}: ${errorMessage(e)}`);
  });
  return {
    cache: informer,
    synced,
    stop: async () => {
      stopped = true;
      await informer.stop();
    },
  };
}

/**
 * A client-node model as plain JSON. The generated models are classes, but the
 * client serializes any object that has their fields, and the API only ever
 * sees JSON; object literals typed with this say so instead of pretending to
 * be class instances.
 */
export type Plain<T> = T extends Date ? Date : T extends readonly (infer U)[] ? Plain<U>[] : T extends object ? { [K in keyof T]: Plain<T[K]> } : T;

/** A model object from plain JSON (see Plain). */
export function model<T>(o: Plain<T>): T {
  return o as unknown as T;
}

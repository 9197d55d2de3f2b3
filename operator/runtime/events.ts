// Records Kubernetes Events (events.k8s.io/v1) about the objects the operator
// manages, as client-go's events recorder does:
//
// - A repeat of the same event (same object, type, reason, action and note)
//   within `seriesWindowMs` (default 6 min, client-go's finishTime) does not
//   create a new Event; it bumps the existing one's series.count and
//   lastObservedTime. Writes for one series are serialised and coalesced: a burst
//   of repeats costs one create and at most a couple of patches.
// - Recording never throws and never rejects: an Event is a courtesy to humans,
//   and a failure to write one (RBAC, apiserver down) must not fail a reconcile.
//   Failures are logged.
//
// events.k8s.io/v1 and core/v1 Events are two views of one storage: `kubectl
// describe` lists core/v1 Events with fieldSelector involvedObject.{name,
// namespace,kind,uid}, and shows these (series.count as the "x N" count).

import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { systemClock } from "./clock.ts";
import type { Clock } from "./clock.ts";
import { silentLogger } from "./logger.ts";
import type { Logger } from "./logger.ts";
import { RestClient, resourcePath } from "./rest.ts";

export type EventType = "Normal" | "Warning";

/** The object an Event is about. uid lets `kubectl describe` match it exactly. */
export interface EventRegarding {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
}

export interface EventSpec<R extends string> {
  readonly type: EventType;
  /** CamelCase, e.g. MemberAdded. */
  readonly reason: R;
  /** Human-readable; truncated to the API's 1 kB limit. */
  readonly note: string;
  /** What the controller did or failed to do; the API requires one. Default "Reconcile". */
  readonly action?: string;
}

export interface EventRecorderOptions {
  readonly kc: KubeConfig;
  /** Which replica: typically the leader-election identity. */
  readonly reportingInstance: string;
  readonly reportingController?: string;
  readonly seriesWindowMs?: number;
  /** Series remembered for de-duplication; the least recently seen are forgotten first. */
  readonly maxSeries?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
}

export const defaultReportingController = "concord.dev/operator";

const events = { group: "events.k8s.io", version: "v1", plural: "events" } as const;
const maxNoteBytes = 1024;
const camelCase = /^[A-Z][A-Za-z0-9]*$/;

interface Series {
  readonly namespace: string;
  /** The Event's name once created. */
  name: string | undefined;
  /** Occurrences seen, and how many of them the apiserver has been told about. Invariant: written <= count. */
  count: number;
  written: number;
  lastObserved: number;
  /** The write loop in flight, if any; at most one per series. */
  flushing: Promise<void> | undefined;
  readonly body: Record<string, unknown>;
}

export function regardingOf(obj: KubernetesObject): EventRegarding {
  return {
    apiVersion: obj.apiVersion ?? "",
    kind: obj.kind ?? "",
    name: obj.metadata?.name ?? "",
    ...(obj.metadata?.namespace !== undefined ? { namespace: obj.metadata.namespace } : {}),
    ...(obj.metadata?.uid !== undefined ? { uid: obj.metadata.uid } : {}),
  };
}

export class EventRecorder<R extends string = string> {
  private readonly o: EventRecorderOptions;
  private readonly rest: RestClient;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** Insertion order is recency order (touched entries are re-inserted). */
  private readonly series = new Map<string, Series>();
  private seq = 0;

  constructor(o: EventRecorderOptions) {
    this.o = o;
    this.rest = RestClient.for(o.kc);
    this.clock = o.clock ?? systemClock;
    this.log = o.log ?? silentLogger;
  }

  /** Records an event about `regarding`. Resolves when written (or given up on); never rejects. */
  async record(regarding: EventRegarding | KubernetesObject, e: EventSpec<R>): Promise<void> {
    try {
      const ref: EventRegarding = "name" in regarding && typeof regarding.name === "string" ? regarding : regardingOf(regarding);
      if (ref.apiVersion === "" || ref.kind === "" || ref.name === "") {
        // Typed reads from client-node drop apiVersion and kind; such an Event would point nowhere.
        this.log.error({ regarding: ref, reason: e.reason }, "event not recorded: regarding needs apiVersion, kind and name");
        return;
      }
      if (!camelCase.test(e.reason)) this.log.warn({ reason: e.reason }, "event reason is not CamelCase");
      const now = this.clock.now();
      const action = e.action ?? "Reconcile";
      const note = truncate(e.note, maxNoteBytes);
      const key = JSON.stringify([ref.uid ?? "", ref.apiVersion, ref.kind, ref.namespace ?? "", ref.name, e.type, e.reason, action, note]);
      let s = this.series.get(key);
      this.series.delete(key);
      if (s !== undefined && now - s.lastObserved > (this.o.seriesWindowMs ?? 360_000)) s = undefined;
      if (s === undefined) {
        s = {
          namespace: ref.namespace ?? "default",
          name: undefined,
          count: 0,
          written: 0,
          lastObserved: now,
          flushing: undefined,
          body: {
            regarding: ref,
            type: e.type,
            reason: e.reason,
            action,
            note,
            reportingController: this.o.reportingController ?? defaultReportingController,
            reportingInstance: this.o.reportingInstance,
          },
        };
      }
      s.count++;
      s.lastObserved = now;
      this.series.set(key, s);
      this.evict();
      await this.flush(s, ref.name);
    } catch (err) {
      this.log.error({ err }, "recording an event failed");
    }
  }

  private evict(): void {
    const max = this.o.maxSeries ?? 4096;
    for (const k of this.series.keys()) {
      if (this.series.size <= max) break;
      this.series.delete(k);
    }
  }

  /** Writes until the apiserver knows every occurrence, or a write fails (the next record retries). */
  private flush(s: Series, objectName: string): Promise<void> {
    if (s.flushing !== undefined) return s.flushing;
    const loop = async (): Promise<void> => {
      // Deferred one turn so that `s.flushing` is set before the loop can clear it.
      await Promise.resolve();
      try {
        while (s.written < s.count) {
          const target = s.count;
          if (!(await this.write(s, objectName, target))) return;
          s.written = target;
        }
      } finally {
        s.flushing = undefined;
      }
    };
    s.flushing = loop();
    return s.flushing;
  }

  private async write(s: Series, objectName: string, count: number): Promise<boolean> {
    const now = this.clock.now();
    const series = count >= 2 ? { series: { count, lastObservedTime: microTime(now) } } : {};
    if (s.name !== undefined) {
      const r = await this.rest.request({
        method: "PATCH",
        path: resourcePath(events, s.namespace, s.name),
        contentType: "application/merge-patch+json",
        body: series,
      });
      if (r.ok) return true;
      if (r.error.type !== "NotFound") {
        this.log.warn({ event: `${s.namespace}/${s.name}`, error: r.error }, "could not update an event series");
        return false;
      }
      // The Event expired (event-ttl) or was deleted: start a new one.
      s.name = undefined;
    }
    const name = `${objectName}.${(now * 1000 + (this.seq++ % 1000)).toString(16)}`;
    const r = await this.rest.request({
      method: "POST",
      path: resourcePath(events, s.namespace),
      body: { apiVersion: "events.k8s.io/v1", kind: "Event", metadata: { name, namespace: s.namespace }, eventTime: microTime(now), ...s.body, ...series },
    });
    if (!r.ok) {
      this.log.error({ event: `${s.namespace}/${name}`, reason: s.body["reason"], error: r.error }, "could not record an event");
      return false;
    }
    s.name = name;
    return true;
  }
}

function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}

function truncate(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = s.slice(0, maxBytes);
  while (Buffer.byteLength(out) > maxBytes - 3) out = out.slice(0, -1);
  return `${out}...`;
}

// The controller: informers on ConsensusClusters and their children feed a
// work queue of cluster keys; while this replica holds the leader Lease, a
// worker reconciles one key at a time. Every event, whatever its kind, only
// names the cluster to look at again (level-triggered), and every cluster is
// looked at again periodically, since member health and lag change without any
// Kubernetes event.

import type { KubeConfig, KubernetesObject, V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import { consensusClusterResource } from "./api/types.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { NodeClient } from "./reconcile/nodeclient.ts";
import type { EventSink, World } from "./reconcile/reconciler.ts";
import { Reconciler } from "./reconcile/reconciler.ts";
import { Informer } from "./runtime/informer.ts";
import { keyOf, splitKey } from "./runtime/keys.ts";
import type { Logger } from "./runtime/logger.ts";
import type { GroupVersionResource, WireObject } from "./runtime/rest.ts";
import { WorkQueue } from "./runtime/workqueue.ts";

export interface ControllerOptions {
  readonly kc: KubeConfig;
  /** Namespaces to watch; empty means all. */
  readonly namespaces: readonly string[];
  readonly defaultImage: string;
  readonly clusterDomain: string;
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  readonly events: EventSink;
  /** How often every cluster is reconciled even without events. */
  readonly resyncMs?: number;
}

const ccResource: GroupVersionResource = { group: consensusClusterResource.group, version: consensusClusterResource.version, plural: consensusClusterResource.plural };
const stsResource: GroupVersionResource = { group: "apps", version: "v1", plural: "statefulsets" };
const podResource: GroupVersionResource = { group: "", version: "v1", plural: "pods" };
const svcResource: GroupVersionResource = { group: "", version: "v1", plural: "services" };
const pdbResource: GroupVersionResource = { group: "policy", version: "v1", plural: "poddisruptionbudgets" };

/** Children and pods carry these labels (builders/names.ts); only ours are watched. */
const childSelector = "app.kubernetes.io/name=concord,app.kubernetes.io/managed-by=concord-operator";
const podSelector = "app.kubernetes.io/name=concord,app.kubernetes.io/component=node";

export class Controller {
  private readonly o: ControllerOptions;
  readonly queue = new WorkQueue();
  private readonly clusters: Informer<WireObject>[] = [];
  private readonly statefulSets: Informer<V1StatefulSet>[] = [];
  private readonly pods: Informer<V1Pod>[] = [];
  private readonly others: Informer<WireObject>[] = [];
  private readonly reconciler: Reconciler;
  private resyncTimer: NodeJS.Timeout | null = null;

  constructor(o: ControllerOptions) {
    this.o = o;
    const scopes: readonly (string | undefined)[] = o.namespaces.length === 0 ? [undefined] : o.namespaces;
    const log = o.log;
    for (const namespace of scopes) {
      const ns = namespace === undefined ? {} : { namespace };
      this.clusters.push(new Informer<WireObject>({ kc: o.kc, resource: ccResource, ...ns, decode: (x) => x, log }));
      this.statefulSets.push(new Informer<V1StatefulSet>({ kc: o.kc, resource: stsResource, ...ns, labelSelector: childSelector, decode: (x) => x, log }));
      this.pods.push(new Informer<V1Pod>({ kc: o.kc, resource: podResource, ...ns, labelSelector: podSelector, decode: (x) => x, log }));
      this.others.push(new Informer<WireObject>({ kc: o.kc, resource: svcResource, ...ns, labelSelector: childSelector, decode: (x) => x, log }));
      this.others.push(new Informer<WireObject>({ kc: o.kc, resource: pdbResource, ...ns, labelSelector: childSelector, decode: (x) => x, log }));
    }
    const world: World = {
      cluster: (namespace, name) => this.find(this.clusters, namespace, name),
      statefulSet: (namespace, name) => this.find(this.statefulSets, namespace, name),
      pods: (namespace, selector) =>
        this.pods.flatMap((i) => i.list(namespace)).filter((p) => Object.entries(selector).every(([k, v]) => p.metadata?.labels?.[k] === v)),
    };
    this.reconciler = new Reconciler({
      kc: o.kc,
      world,
      nodes: new NodeClient(),
      events: o.events,
      log,
      defaultImage: o.defaultImage,
      clusterDomain: o.clusterDomain,
      observe: (cc, p) => {
        o.metrics.observeCluster(keyOf(cc.metadata.namespace, cc.metadata.name ?? ""), p);
      },
    });
    this.wire();
  }

  private find<T extends KubernetesObject>(informers: readonly Informer<T>[], namespace: string, name: string): T | undefined {
    for (const i of informers) {
      const x = i.get(namespace, name);
      if (x !== undefined) return x;
    }
    return undefined;
  }

  /** Every event becomes "look at this cluster again". */
  private wire(): void {
    const enqueueSelf = (x: KubernetesObject): void => {
      if (x.metadata?.name !== undefined) this.queue.add(keyOf(x.metadata.namespace, x.metadata.name));
    };
    const enqueueOwner = (x: KubernetesObject): void => {
      const owner = x.metadata?.ownerReferences?.find((r) => r.controller === true && r.kind === consensusClusterResource.kind && r.apiVersion === consensusClusterResource.apiVersion);
      if (owner !== undefined) this.queue.add(keyOf(x.metadata?.namespace, owner.name));
    };
    // Pods belong to the StatefulSet; their cluster is named by the instance label.
    const enqueuePod = (x: KubernetesObject): void => {
      const instance = x.metadata?.labels?.["app.kubernetes.io/instance"];
      if (instance !== undefined) this.queue.add(keyOf(x.metadata?.namespace, instance));
    };
    const on = <T extends KubernetesObject>(informers: readonly Informer<T>[], f: (x: T) => void): void => {
      for (const i of informers) {
        i.onAdd(f);
        i.onUpdate((_old, x) => {
          f(x);
        });
        i.onDelete(f);
      }
    };
    on(this.clusters, enqueueSelf);
    on(this.statefulSets, enqueueOwner);
    on(this.others, enqueueOwner);
    on(this.pods, enqueuePod);
  }

  private informers(): Informer<KubernetesObject>[] {
    return [...this.clusters, ...this.statefulSets, ...this.pods, ...this.others] as Informer<KubernetesObject>[];
  }

  /** Starts the informers (standbys keep warm caches, so a takeover is quick). */
  startInformers(): void {
    for (const i of this.informers()) i.start();
  }

  /** The informers, for readiness. */
  syncSources(): readonly { readonly name: string; hasSynced(): boolean }[] {
    return this.informers();
  }

  synced(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  async waitForSync(signal: AbortSignal): Promise<boolean> {
    const r = await Promise.all(this.informers().map((i) => i.waitForSync(signal)));
    return r.every(Boolean);
  }

  /** Reconciles until `signal` aborts (the leader's term). */
  async run(signal: AbortSignal): Promise<void> {
    if (!(await this.waitForSync(signal))) return;
    this.o.log.info({ clusters: this.clusters.reduce((n, i) => n + i.list().length, 0) }, "caches synced; reconciling");
    for (const c of this.clusters.flatMap((i) => i.list())) enqueueKey(this.queue, c);
    const resyncMs = this.o.resyncMs ?? 15_000;
    const resync = setInterval(() => {
      for (const c of this.clusters.flatMap((i) => i.list())) enqueueKey(this.queue, c);
    }, resyncMs);
    this.resyncTimer = resync;
    const stop = (): void => {
      this.queue.shutDown();
    };
    signal.addEventListener("abort", stop, { once: true });
    try {
      for (;;) {
        const key = await this.queue.get();
        if (key === null) break;
        this.o.metrics.queueDepth.set(this.queue.len());
        try {
          await this.process(key);
        } finally {
          this.queue.done(key);
        }
      }
    } finally {
      clearInterval(resync);
      signal.removeEventListener("abort", stop);
    }
  }

  private async process(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const end = this.o.metrics.reconcileDuration.startTimer();
    let result;
    try {
      result = await this.reconciler.reconcile(namespace ?? "default", name);
    } catch (e) {
      // A bug, not an expected failure; keep the controller alive and retry with backoff.
      this.o.log.error({ key, err: e }, "reconcile threw");
      result = { type: "Error" as const, message: e instanceof Error ? e.message : String(e) };
    }
    end();
    switch (result.type) {
      case "Done":
        this.queue.forget(key);
        this.o.metrics.reconcileTotal.inc({ result: "success" });
        if (this.find(this.clusters, namespace ?? "default", name) === undefined) this.o.metrics.observeCluster(key, null);
        return;
      case "RequeueAfter":
        this.queue.forget(key);
        this.queue.addAfter(key, result.ms);
        this.o.metrics.reconcileTotal.inc({ result: "requeue" });
        return;
      case "Error":
        this.o.log.warn({ key, error: result.message, retries: this.queue.numRequeues(key) }, "reconcile failed; retrying with backoff");
        this.queue.addRateLimited(key);
        this.o.metrics.reconcileTotal.inc({ result: "error" });
        return;
    }
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    if (this.resyncTimer !== null) clearInterval(this.resyncTimer);
    await Promise.all(this.informers().map((i) => i.stop()));
  }
}

function enqueueKey(q: WorkQueue, x: KubernetesObject): void {
  if (x.metadata?.name !== undefined) q.add(keyOf(x.metadata.namespace, x.metadata.name));
}

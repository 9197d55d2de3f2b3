import { describe, expect, it } from "vitest";
import type { V1Node, V1PersistentVolumeClaim, V1Pod, V1PodSpec } from "@kubernetes/client-node";
import { model } from "./kube.ts";
import type { Plain } from "./kube.ts";
import { claimsReady, podFitsNode, wantsScheduling } from "./scheduler.ts";
import type { FitResult } from "./scheduler.ts";
import { lookupImage, parseImageRef } from "./images.ts";

const node = model<V1Node>({
  metadata: { name: "concord-local", labels: { "kubernetes.io/hostname": "concord-local", "kubernetes.io/os": "linux" } },
  spec: { taints: [{ key: "dedicated", value: "e2e", effect: "NoSchedule" }] },
});

function pod(spec: Partial<Plain<V1PodSpec>>): V1Pod {
  return model<V1Pod>({
    metadata: { name: "p", namespace: "default" },
    spec: { containers: [], tolerations: [{ key: "dedicated", operator: "Equal", value: "e2e", effect: "NoSchedule" }], ...spec },
  });
}

function message(r: FitResult): string {
  return r.type === "Unschedulable" ? r.message : "(fits)";
}

describe("podFitsNode", () => {
  it("accepts a matching nodeSelector and required affinity", () => {
    expect(podFitsNode(pod({ nodeSelector: { "kubernetes.io/os": "linux" } }), node).type).toBe("Fits");
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "zone", operator: "In", values: ["a"] }] },
            { matchFields: [{ key: "metadata.name", operator: "In", values: ["concord-local"] }] },
          ],
        },
      },
    };
    expect(podFitsNode(pod({ affinity }), node).type).toBe("Fits");
  });

  it("rejects a selector, an affinity or a taint the pod does not match", () => {
    expect(message(podFitsNode(pod({ nodeSelector: { disk: "ssd" } }), node))).toContain("disk=ssd");
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/os", operator: "NotIn", values: ["linux"] }] }] } } };
    expect(podFitsNode(pod({ affinity }), node).type).toBe("Unschedulable");
    expect(message(podFitsNode(pod({ tolerations: [] }), node))).toContain("untolerated taint {dedicated: e2e}");
    expect(podFitsNode(pod({ tolerations: [{ operator: "Exists" }] }), node).type).toBe("Fits");
  });

  it("waits for immediate claims to be bound", () => {
    const p = pod({ volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data-0" } }] });
    const claim = (phase: string) => (): V1PersistentVolumeClaim => model<V1PersistentVolumeClaim>({ metadata: { name: "data-0" }, status: { phase } });
    expect(message(claimsReady(p, () => undefined))).toContain('"data-0" not found');
    expect(message(claimsReady(p, claim("Pending")))).toContain("unbound immediate PersistentVolumeClaims");
    expect(claimsReady(p, claim("Bound")).type).toBe("Fits");
  });

  it("takes only unbound pods for the default scheduler", () => {
    expect(wantsScheduling(pod({}))).toBe(true);
    expect(wantsScheduling(pod({ nodeName: "x" }))).toBe(false);
    expect(wantsScheduling(pod({ schedulerName: "other" }))).toBe(false);
  });
});

describe("image map", () => {
  const map = { "concord-e2e/echo*": { entrypoint: ["echo"] }, concord: { entrypoint: ["concord"] }, "concord:old": { entrypoint: ["old"] } };
  it.each([
    ["concord", "concord"],
    ["concord:latest", "concord"],
    ["concord:old", "old"],
    ["concord-e2e/echo:1.2", "echo"],
    ["concord-e2e/echo-slow", "echo"],
  ])("%s → %s", (image, entry) => {
    const r = lookupImage(map, image, "test");
    expect(r.type === "Found" ? r.config.entrypoint[0] : r.message).toBe(entry);
  });

  it("names the map when an image is unknown", () => {
    const r = lookupImage(map, "nginx:1.27", "the test map");
    expect(r.type === "NotFound" ? r.message : "").toContain("the test map");
  });

  it("parses registry ports and digests", () => {
    expect(parseImageRef("localhost:5000/a/b:1@sha256:abc")).toEqual({ repository: "localhost:5000/a/b", tag: "1" });
    expect(parseImageRef("localhost:5000/a")).toEqual({ repository: "localhost:5000/a", tag: "" });
  });
});

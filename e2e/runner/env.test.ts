// Container environment, downward API and $(VAR) expansion, as the kubelet
// computes them. Reference: pkg/kubelet/kubelet_pods.go makeEnvironmentVariables,
// third_party/forked/golang/expansion (expand_test.go cases).

import { describe, expect, it } from "vitest";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { containerArgv, containerEnv, expand, fieldRefValue, formatMap, resourceFieldValue } from "./env.ts";
import type { EnvSources } from "./env.ts";
import { model } from "./kube.ts";
import { parseQuantity } from "./quantity.ts";

const vars: Record<string, string> = { VAR_A: "A", VAR_B: "B", VAR_EMPTY: "" };
const m = (n: string): string | undefined => vars[n];

describe("expand", () => {
  it.each([
    ["$(VAR_A)", "A"],
    ["___$(VAR_B)___", "___B___"],
    ["$(VAR_A)-$(VAR_B)", "A-B"],
    ["$(VAR_EMPTY)", ""],
    // Undefined references stay as written.
    ["$(VAR_NOPE)", "$(VAR_NOPE)"],
    // $$ escapes.
    ["$$(VAR_A)", "$(VAR_A)"],
    ["$$$(VAR_A)", "$A"],
    ["$$$$(VAR_A)", "$$(VAR_A)"],
    // A $ that starts no reference is kept.
    ["$VAR_A", "$VAR_A"],
    ["f$oo", "f$oo"],
    ["trailing $", "trailing $"],
    // Unterminated reference.
    ["$(VAR_A", "$(VAR_A"],
    ["$()", "$()"],
    ["", ""],
  ])("%j → %j", (input, out) => {
    expect(expand(input, m)).toBe(out);
  });
});

const pod = model<V1Pod>({
  metadata: { name: "web-0", namespace: "prod", uid: "u-1", labels: { app: "web", tier: "fe" }, annotations: { "x/y": "z" } },
  spec: {
    nodeName: "concord-local",
    serviceAccountName: "web",
    containers: [{ name: "c", image: "i", resources: { limits: { memory: "64Mi", cpu: "500m" }, requests: { cpu: "250m" } } }],
  },
});

const rt = { podIP: "127.1.0.7", hostIP: "127.0.0.1" };
const node = { cpu: 2, memory: 8 * 2 ** 30, ephemeralStorage: 10 * 2 ** 30 };
const sources: EnvSources = {
  configMap: (n) => (n === "cfg" ? { LEVEL: "debug", "bad key": "x", PORT: "8080" } : null),
  secret: (n) => (n === "creds" ? { password: "hunter2" } : null),
};

function run(c: Partial<V1Container>): ReturnType<typeof containerEnv> {
  return containerEnv({ pod, container: model<V1Container>({ name: "c", image: "i", ...c }), runtime: rt, node, sources, runtimeEnv: { HOSTNAME: "web-0", KUBERNETES_SERVICE_HOST: "127.0.0.1" } });
}

function envOf(c: Partial<V1Container>): Record<string, string> {
  const r = run(c);
  if (r.type !== "Ok") throw new Error(r.message);
  return Object.fromEntries(r.env);
}

describe("downward API", () => {
  it.each([
    ["metadata.name", "web-0"],
    ["metadata.namespace", "prod"],
    ["metadata.uid", "u-1"],
    ["metadata.labels['app']", "web"],
    ["metadata.labels['missing']", ""],
    ["metadata.annotations['x/y']", "z"],
    ["spec.nodeName", "concord-local"],
    ["spec.serviceAccountName", "web"],
    ["status.podIP", "127.1.0.7"],
    ["status.podIPs", "127.1.0.7"],
    ["status.hostIP", "127.0.0.1"],
    ["status.hostIPs", "127.0.0.1"],
  ])("fieldRef %s", (fieldPath, value) => {
    expect(fieldRefValue(pod, { fieldPath }, rt)).toEqual({ ok: true, value });
  });

  it("formats label maps as the downward API volume does", () => {
    expect(formatMap({ tier: "fe", app: "web" })).toBe('app="web"\ntier="fe"');
  });

  it.each([
    ["limits.memory", undefined, String(64 * 2 ** 20)],
    ["limits.memory", "1Mi", "64"],
    ["limits.cpu", undefined, "1"], // 500m rounded up to whole cores
    ["limits.cpu", "1m", "500"],
    ["requests.cpu", "1m", "250"],
    ["requests.memory", undefined, "0"],
    ["limits.ephemeral-storage", "1Gi", "10"], // unset limit: node allocatable
  ])("resourceFieldRef %s / %s", (resource, divisor, value) => {
    expect(resourceFieldValue(pod, "c", divisor === undefined ? { resource } : { resource, divisor }, node)).toEqual({ ok: true, value });
  });
});

describe("containerEnv", () => {
  it("expands literal values against earlier variables only", () => {
    const env = envOf({
      env: [
        { name: "A", value: "a" },
        { name: "B", value: "$(A)-$(C)" }, // C is defined later: not expanded
        { name: "C", value: "c" },
        { name: "D", value: "$$(A) $(HOSTNAME)" }, // runtime vars count too
      ],
    });
    expect(env["B"]).toBe("a-$(C)");
    expect(env["D"]).toBe("$(A) web-0");
  });

  it("does not expand values that come from references", () => {
    const env = envOf({
      env: [
        { name: "A", value: "x" },
        { name: "LEVEL_REF", valueFrom: { configMapKeyRef: { name: "cfg", key: "LEVEL" } } },
      ],
    });
    expect(env["LEVEL_REF"]).toBe("debug");
  });

  it("takes envFrom first, with prefixes, skipping invalid names; env overrides it", () => {
    const env = envOf({
      envFrom: [{ configMapRef: { name: "cfg" }, prefix: "CFG_" }, { secretRef: { name: "creds" } }],
      env: [{ name: "CFG_PORT", value: "9090" }],
    });
    expect(env["CFG_LEVEL"]).toBe("debug");
    expect(env["CFG_PORT"]).toBe("9090");
    expect(env["password"]).toBe("hunter2");
    expect(Object.keys(env).some((k) => k.includes(" "))).toBe(false);
  });

  it("reports missing references as CreateContainerConfigError unless optional", () => {
    expect(run({ env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "nope", key: "k" } } }] })).toEqual({
      type: "ConfigError",
      message: 'configmap "nope" not found',
    });
    expect(run({ env: [{ name: "X", valueFrom: { secretKeyRef: { name: "creds", key: "user" } } }] }).type).toBe("ConfigError");
    expect(envOf({ env: [{ name: "X", valueFrom: { secretKeyRef: { name: "creds", key: "user", optional: true } } }] })["X"]).toBeUndefined();
    expect(run({ envFrom: [{ configMapRef: { name: "nope" } }] }).type).toBe("ConfigError");
    expect(run({ envFrom: [{ configMapRef: { name: "nope", optional: true } }] }).type).toBe("Ok");
  });

  it("lets env override runtime and image variables", () => {
    const r = containerEnv({
      pod,
      container: model<V1Container>({ name: "c", env: [{ name: "HOSTNAME", value: "custom" }, { name: "IMG", value: "pod" }] }),
      runtime: rt,
      node,
      sources,
      imageEnv: { IMG: "image", ONLY_IMAGE: "1" },
      runtimeEnv: { HOSTNAME: "web-0" },
    });
    expect(r.type === "Ok" ? Object.fromEntries(r.env) : null).toMatchObject({ HOSTNAME: "custom", IMG: "pod", ONLY_IMAGE: "1" });
  });
});

describe("containerArgv", () => {
  const image = { entrypoint: ["/bin/server"], cmd: ["--default"] };
  const env = new Map([["PORT", "8080"]]);
  it.each([
    [{}, ["/bin/server", "--default"]],
    [{ args: ["--port=$(PORT)"] }, ["/bin/server", "--port=8080"]],
    [{ command: ["/bin/other"] }, ["/bin/other"]], // command drops the image's cmd
    [{ command: ["/bin/other"], args: ["$(PORT)", "$$(PORT)"] }, ["/bin/other", "8080", "$(PORT)"]],
  ])("%j", (c, argv) => {
    expect(containerArgv(image, c, env)).toEqual(argv);
  });
});

describe("parseQuantity", () => {
  it.each([
    ["1", 1],
    ["500m", 0.5],
    ["2Gi", 2 * 2 ** 30],
    ["128Mi", 128 * 2 ** 20],
    ["1k", 1000],
    ["1e3", 1000],
    ["1.5", 1.5],
    ["x", null],
    ["1Qi", null],
  ])("%s", (q, v) => {
    expect(parseQuantity(q)).toBe(v);
  });
});

// Runs one probe or handler (httpGet, tcpSocket, exec) against a container, as
// the kubelet's prober does: HTTP 200-399 is success, TLS is not verified, the
// host defaults to the pod IP (reached from the runner in the root network
// namespace over the pod bridge), and exec runs inside the container's mount,
// UTS and network namespaces (nsenter into the shim). probes.ts decides what results mean.

import { spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import type { V1ContainerPort, V1ExecAction, V1HTTPGetAction, V1TCPSocketAction } from "@kubernetes/client-node";
import type { RunAs } from "./container.ts";
import { tools } from "./container.ts";

export interface ProbeTarget {
  readonly podIP: string;
  readonly ports: readonly V1ContainerPort[];
  /** The shim's pid, for exec; null when the container is not running. */
  readonly pid: number | null;
  readonly env: ReadonlyMap<string, string>;
  readonly workingDir: string;
  readonly runAs: RunAs | null;
}

export interface ProbeAction {
  readonly httpGet?: V1HTTPGetAction;
  readonly tcpSocket?: V1TCPSocketAction;
  readonly exec?: V1ExecAction;
  readonly grpc?: unknown;
}

export type ProbeOutcome = { readonly ok: true } | { readonly ok: false; readonly message: string };

/** A port given by number or by the name of one of the container's ports. */
export function resolvePort(port: number | string | undefined, ports: readonly V1ContainerPort[]): number | null {
  if (typeof port === "number") return port;
  if (port === undefined) return null;
  if (/^\d+$/.test(port)) return Number(port);
  return ports.find((p) => p.name === port)?.containerPort ?? null;
}

function httpGet(a: V1HTTPGetAction, t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  const port = resolvePort(a.port, t.ports);
  if (port === null) return Promise.resolve({ ok: false, message: `unknown port ${String(a.port)}` });
  const host = a.host !== undefined && a.host !== "" ? a.host : t.podIP;
  const headers: Record<string, string> = { "user-agent": "kube-probe/1.37", accept: "*/*" };
  for (const h of a.httpHeaders ?? []) headers[h.name.toLowerCase()] = h.value;
  const path = a.path === undefined || a.path === "" ? "/" : a.path.startsWith("/") ? a.path : `/${a.path}`;
  const https = a.scheme === "HTTPS";
  return new Promise((resolve) => {
    const req = (https ? httpsRequest : httpRequest)(
      { host, port, path, method: "GET", headers, timeout: timeoutMs, ...(https ? { rejectUnauthorized: false } : {}) },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(code >= 200 && code < 400 ? { ok: true } : { ok: false, message: `HTTP probe failed with statuscode: ${code}` });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`context deadline exceeded (timeout ${timeoutMs} ms)`)));
    req.on("error", (e) => {
      resolve({ ok: false, message: `Get "${https ? "https" : "http"}://${host}:${port}${path}": ${e.message}` });
    });
    req.end();
  });
}

function tcpSocket(a: V1TCPSocketAction, t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  const port = resolvePort(a.port, t.ports);
  if (port === null) return Promise.resolve({ ok: false, message: `unknown port ${String(a.port)}` });
  const host = a.host !== undefined && a.host !== "" ? a.host : t.podIP;
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ ok: false, message: `dial tcp ${host}:${port}: i/o timeout` });
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ ok: true });
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      resolve({ ok: false, message: `dial tcp ${host}:${port}: ${e.message}` });
    });
  });
}

/** Runs a command in the container's namespaces; resolves with its exit code and output. */
export function execInContainer(
  command: readonly string[],
  t: ProbeTarget,
  timeoutMs: number,
): Promise<{ exitCode: number | null; output: string; timedOut: boolean }> {
  if (t.pid === null) return Promise.resolve({ exitCode: null, output: "container is not running", timedOut: false });
  const args = ["--target", String(t.pid), "--mount", "--uts", "--net", `--wd=${t.workingDir}`];
  if (t.runAs?.uid !== undefined && t.runAs.uid !== null) args.push(`--setuid=${t.runAs.uid}`);
  if (t.runAs?.gid !== undefined && t.runAs.gid !== null) args.push(`--setgid=${t.runAs.gid}`);
  args.push("--", ...command);
  return new Promise((resolve) => {
    const child = spawn(tools.nsenter, args, { env: Object.fromEntries(t.env), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const collect = (b: Buffer): void => {
      if (output.length < 4096) output += b.toString("utf8");
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      resolve({ exitCode: null, output: e.message, timedOut: false });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code, output, timedOut });
    });
  });
}

export async function runProbe(a: ProbeAction, t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  if (a.httpGet !== undefined) return httpGet(a.httpGet, t, timeoutMs);
  if (a.tcpSocket !== undefined) return tcpSocket(a.tcpSocket, t, timeoutMs);
  if (a.exec !== undefined) {
    const r = await execInContainer(a.exec.command ?? [], t, timeoutMs);
    if (r.timedOut) return { ok: false, message: `command timed out after ${timeoutMs} ms` };
    return r.exitCode === 0 ? { ok: true } : { ok: false, message: `command exited with ${String(r.exitCode)}: ${r.output.trim()}` };
  }
  if (a.grpc !== undefined) return { ok: false, message: "grpc probes are not supported by the pod runner" };
  return { ok: false, message: "probe has no handler" };
}

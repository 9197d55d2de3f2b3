// npm start: a 3-member Concord cluster on loopback, no Kubernetes needed.
// Data lives under .data/local/<name>; running it again resumes that data.
// Ctrl-C stops every member cleanly (SIGTERM, then waits).

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { nodeRuntimeFlags } from "../bin/runtime-flags.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const { values } = parseArgs({
  options: {
    members: { type: "string", default: "3" },
    "data-dir": { type: "string", default: join(root, ".data", "local") },
    "client-port": { type: "string", default: "8379" },
    "peer-port": { type: "string", default: "2380" },
    "log-level": { type: "string", default: "info" },
  },
});

const count = Number(values.members);
const clientPort = Number(values["client-port"]);
const peerPort = Number(values["peer-port"]);
if (!Number.isInteger(count) || count < 1 || count > 9) {
  process.stderr.write("local-cluster: --members must be 1..9\n");
  process.exit(2);
}

const members = Array.from({ length: count }, (_, k) => ({
  name: `node${k + 1}`,
  client: `http://127.0.0.1:${clientPort + k}`,
  peer: `http://127.0.0.1:${peerPort + k}`,
}));
const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(",");

const children: ChildProcess[] = [];
let stopping = false;
const isStopping = (): boolean => stopping;
for (const m of members) {
  const dataDir = join(values["data-dir"], m.name);
  mkdirSync(dataDir, { recursive: true });
  const child = spawn(
    process.execPath,
    [
      ...nodeRuntimeFlags,
      join(root, "node", "main.ts"),
      "--name", m.name,
      "--data-dir", dataDir,
      "--listen-client-urls", m.client,
      "--listen-peer-urls", m.peer,
      "--initial-advertise-peer-urls", m.peer,
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
      "--log-level", values["log-level"],
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  // Each member logs pino JSON; prefix lines with the member's name.
  for (const stream of [child.stdout, child.stderr]) {
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        process.stdout.write(`${m.name} | ${buf.slice(0, nl)}\n`);
        buf = buf.slice(nl + 1);
      }
    });
  }
  child.on("exit", (code, signal) => {
    process.stdout.write(`${m.name} exited (${signal ?? `code ${code ?? "?"}`})\n`);
    if (!stopping) stop(1);
  });
  children.push(child);
}

process.stdout.write(`Concord local cluster: ${count} members, data in ${values["data-dir"]}\n`);
for (const m of members) process.stdout.write(`  ${m.name}  client ${m.client}  peer ${m.peer}\n`);

interface StatusBody {
  leader?: { name?: string } | null;
}

// Report the leader once one is elected.
void (async () => {
  for (let attempt = 0; attempt < 100 && !isStopping(); attempt++) {
    try {
      const res = await fetch(`${members[0]?.client ?? ""}/v1/cluster/status`);
      if (res.ok) {
        const body = (await res.json()) as StatusBody;
        const leader = body.leader?.name;
        if (leader !== undefined) {
          process.stdout.write(`leader: ${leader}. Try: curl -X PUT ${members[0]?.client ?? ""}/v1/kv/hello -d world\n`);
          return;
        }
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
})();

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  process.stdout.write("stopping members...\n");
  let left = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
  if (left === 0) process.exit(code);
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.once("exit", () => {
      left--;
      if (left === 0) process.exit(code);
    });
    c.kill("SIGTERM");
  }
  // A member that does not stop within its grace period is killed.
  setTimeout(() => {
    for (const c of children) c.kill("SIGKILL");
  }, 35_000).unref();
}

process.on("SIGINT", () => {
  stop(0);
});
process.on("SIGTERM", () => {
  stop(0);
});

// Who this member is: its Raft id, its name, and the cluster it belongs to.
// Written once, atomically, when the data directory is initialised; a
// restart reads it and ignores the bootstrap flags.

import { createHash, randomBytes } from "node:crypto";
import { open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { NodeId } from "../raft/index.ts";
import { nodeId } from "../raft/index.ts";

/** How the data directory was initialised, so that an interrupted start can finish. */
export type Origin = "new" | "join" | "restore";

export interface SeedMember {
  readonly id: NodeId;
  readonly name: string;
  readonly peerUrls: readonly string[];
}

export interface Identity {
  readonly id: NodeId;
  readonly name: string;
  readonly clusterId: string;
  readonly origin: Origin;
  /**
   * The members known when the directory was initialised: the initial
   * cluster (origin new) or the directory learned from a peer (origin join).
   */
  readonly members: readonly SeedMember[];
}

const identitySchema = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  name: z.string().min(1),
  clusterId: z.string().min(1),
  origin: z.enum(["new", "join", "restore"]),
  members: z.array(z.object({ id: z.string().min(1), name: z.string().min(1), peerUrls: z.array(z.string()) })),
});

const fileName = "member.json";

function hex16(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 16);
}

/**
 * The ids of the initial members are derived from the initial cluster, so
 * that every initial member computes the same ones without talking.
 */
export function initialMemberId(clusterId: string, name: string, peerUrl: string): NodeId {
  return nodeId(hex16(`member\n${clusterId}\n${name}\n${peerUrl}`));
}

export function clusterIdFor(token: string, initialCluster: ReadonlyMap<string, URL>): string {
  const parts = [...initialCluster].map(([n, u]) => `${n}=${u.origin}`).sort();
  return hex16(`cluster\n${token}\n${parts.join(",")}`);
}

/** Members added at run time get random ids, so a re-added name never reuses an old id. */
export function randomMemberId(): NodeId {
  return nodeId(randomBytes(8).toString("hex"));
}

export type IdentityRead = { readonly found: true; readonly identity: Identity } | { readonly found: false } | { readonly error: string };

export async function readIdentity(dataDir: string): Promise<IdentityRead> {
  let text: string;
  try {
    text = await readFile(join(dataDir, fileName), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { found: false };
    return { error: `cannot read ${join(dataDir, fileName)}: ${(e as Error).message}` };
  }
  try {
    const parsed = identitySchema.safeParse(JSON.parse(text));
    if (!parsed.success) return { error: `${join(dataDir, fileName)} is invalid: ${parsed.error.issues[0]?.message ?? "?"}` };
    const d = parsed.data;
    return {
      found: true,
      identity: { ...d, id: nodeId(d.id), members: d.members.map((m) => ({ ...m, id: nodeId(m.id) })) },
    };
  } catch {
    return { error: `${join(dataDir, fileName)} is not JSON` };
  }
}

export async function writeIdentity(dataDir: string, identity: Identity): Promise<void> {
  const target = join(dataDir, fileName);
  const tmp = `${target}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(`${JSON.stringify(identity, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, target);
  const dir = await open(dataDir, "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

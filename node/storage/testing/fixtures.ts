// Helpers for the storage tests: a fresh temp directory per test, entry
// builders, and a logger that records what it was told.

import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { onTestFinished } from "vitest";
import type { Entry, NodeId } from "../../raft/types.ts";
import type { StorageLogger } from "../logger.ts";
import { readSegment } from "../segment.ts";

/** A new empty directory under os.tmpdir(), removed when the current test ends. */
export async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "concord-storage-"));
  onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

const encoder = new TextEncoder();

export function ent(index: number, term: number, data = `e${index}t${term}`): Entry {
  return { kind: "normal", index, term, data: encoder.encode(data) };
}

/** Entries lo..hi inclusive, all of term `term`. */
export function ents(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(ent(i, term));
  return out;
}

export function confEnt(index: number, term: number, node: string): Entry {
  return { kind: "conf", index, term, change: { type: "addLearner", node: node as NodeId, context: encoder.encode(`{"url":"${node}"}`) } };
}

export interface LogLine {
  readonly level: "info" | "warn";
  readonly fields: object;
  readonly message: string;
}

export function recordingLogger(): StorageLogger & { readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (fields, message) => lines.push({ level: "info", fields, message }),
    warn: (fields, message) => lines.push({ level: "warn", fields, message }),
  };
}

export async function fileSize(file: string): Promise<number> {
  return (await fs.stat(file)).size;
}

/**
 * Where a segment's saves end (the WAL writes zeros after them: see Wal),
 * as replay finds it.
 */
export async function dataEnd(file: string): Promise<number> {
  const read = readSegment(new Uint8Array(await fs.readFile(file)), file, true);
  if (!read.ok) throw new Error(`dataEnd: ${read.error.message}`);
  return read.end;
}

/** Cuts the zeros written ahead off a closed segment, leaving a file that ends with its last save. */
export async function cutZeros(file: string): Promise<number> {
  const end = await dataEnd(file);
  await fs.truncate(file, end);
  return end;
}

/** Flips one bit of the byte at `offset`. */
export async function flipByte(file: string, offset: number): Promise<void> {
  const h = await fs.open(file, "r+");
  try {
    const b = Buffer.alloc(1);
    await h.read(b, 0, 1, offset);
    b[0] = (b[0] ?? 0) ^ 0x40;
    await h.write(b, 0, 1, offset);
  } finally {
    await h.close();
  }
}

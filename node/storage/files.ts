// Small filesystem helpers shared by the WAL and the snapshot store.

import type { FileHandle } from "node:fs/promises";
import * as fs from "node:fs/promises";
import * as path from "node:path";

/** Makes a rename, create or unlink in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, "r");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Creates `dir` (and parents) if missing; returns whether it was created. New directory entries are made durable. */
export async function ensureDir(dir: string): Promise<boolean> {
  const firstCreated = await fs.mkdir(dir, { recursive: true });
  if (firstCreated === undefined) return false;
  // Each created directory's entry lives in its parent: fsync the parents, from `dir` up to the first one created.
  const top = path.resolve(firstCreated);
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    await fsyncDir(path.dirname(d));
    if (d === top || path.dirname(d) === d) break;
  }
  return true;
}

/** Writes all of `buf` at `position`, looping over short writes. */
export async function writeAll(h: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await h.write(buf, done, buf.byteLength - done, position + done);
    if (bytesWritten <= 0) throw new Error("storage: write made no progress");
    done += bytesWritten;
  }
}

/**
 * Creates `file` with `content` (one buffer, or pieces written in order) atomically: a temp file is written and
 * fsynced, renamed into place, and the directory fsynced. A crash leaves
 * either no file or the complete one (and perhaps a stray temp file).
 */
export async function writeFileAtomic(file: string, content: Uint8Array | readonly Uint8Array[]): Promise<void> {
  const tmp = `${file}.tmp`;
  const h = await fs.open(tmp, "w");
  try {
    let at = 0;
    for (const part of content instanceof Uint8Array ? [content] : content) {
      await writeAll(h, part, at);
      at += part.byteLength;
    }
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Removes leftover temp files from interrupted atomic writes. */
export async function removeTempFiles(dir: string, names: readonly string[]): Promise<void> {
  for (const n of names) if (n.endsWith(".tmp")) await fs.rm(path.join(dir, n), { force: true });
}

/**
 * Reads a whole file as a plain Uint8Array. Not a Buffer: Buffer#slice makes
 * views, and the codec's readers copy entry data out with slice so that a
 * decoded entry does not pin the whole file in memory.
 */
export async function readWholeFile(file: string): Promise<Uint8Array> {
  const b = await fs.readFile(file);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

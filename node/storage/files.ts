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
 * How much of a large file is written before it is flushed (fdatasync), so
 * that the disk takes it a piece at a time. Flushed in one go at the end, a
 * 30 MB snapshot held up every WAL fsync on the same disk for about 90 ms
 * (each one 18-62 ms instead of about 1 ms); flushed a MiB at a time, the WAL
 * fsyncs beside it stayed at about 1.4 ms, with one of about 20 ms, and the
 * file took as long to write. `npm run bench:wal` measures both.
 */
export const flushEveryBytes = 1 << 20;

/**
 * Creates `file` with `content` (one buffer, or pieces written in order) atomically: a temp file is written and
 * fsynced, renamed into place, and the directory fsynced. A crash leaves
 * either no file or the complete one (and perhaps a stray temp file). A
 * large file is written and flushed flushEvery bytes at a time.
 */
export async function writeFileAtomic(file: string, content: Uint8Array | readonly Uint8Array[], flushEvery = flushEveryBytes): Promise<void> {
  if (!Number.isSafeInteger(flushEvery) || flushEvery < 1) throw new Error(`storage: flushEvery ${flushEvery} is not a positive integer`);
  const tmp = `${file}.tmp`;
  const h = await fs.open(tmp, "w");
  try {
    let at = 0;
    let unflushed = 0;
    for (const part of content instanceof Uint8Array ? [content] : content) {
      for (let off = 0; off < part.byteLength; ) {
        const n = Math.min(part.byteLength - off, flushEvery - unflushed);
        await writeAll(h, part.subarray(off, off + n), at);
        off += n;
        at += n;
        unflushed += n;
        if (unflushed === flushEvery) {
          await h.datasync();
          unflushed = 0;
        }
      }
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

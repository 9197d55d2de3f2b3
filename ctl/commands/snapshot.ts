// snapshot save: streams GET /v1/snapshot into a file, atomically: the bytes
// go to a temporary file beside it, are synced, checked against
// Content-Length, and only then renamed over FILE. An interrupted or short
// download never leaves a partial FILE behind.

import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { StreamReply } from "../client.ts";
import type { Command } from "../command.ts";
import type { Result } from "../errors.ts";
import { describe, fail, ok } from "../errors.ts";
import { json } from "../output.ts";

export const snapshotSave: Command = {
  words: ["snapshot", "save"],
  args: "FILE",
  arity: { min: 1, max: 1 },
  summary: "save a consistent snapshot (a backup) to FILE",
  help: `Prints the revision the snapshot holds and its size. Restore it with
concord-node --data-dir NEW --restore-snapshot FILE, which starts a new
single-member cluster with that data.`,
  options: {},
  run: async (ctx, a) => {
    const file = a.arg(0);
    const s = await ctx.client.stream({ method: "GET", path: "/v1/snapshot", headers: { Accept: "application/octet-stream" }, idempotent: true });
    if (!s.ok) return s;
    const revision = Number(s.value.headers.get("x-concord-revision"));
    const w = await writeAtomically(file, s.value);
    if (!w.ok) return w;
    const size = w.value;
    ctx.io.write(
      ctx.output === "json"
        ? json({ file, revision, size, endpoint: s.value.endpoint })
        : `snapshot saved to ${file}: revision ${revision}, ${size} bytes (from ${s.value.endpoint})\n`,
    );
    return ok(0);
  },
};

async function writeAtomically(file: string, s: StreamReply): Promise<Result<number>> {
  const tmp = join(dirname(file), `.${basename(file)}.part-${process.pid}`);
  const expected = s.headers.get("content-length");
  const failed = (message: string): Result<never> => fail({ type: "Local", code: "SnapshotFailed", message });
  let size = 0;
  try {
    const fh = await open(tmp, "wx", 0o600);
    try {
      const reader = s.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await fh.write(value);
        size += value.byteLength;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (expected !== null && Number(expected) !== size) {
      await rm(tmp, { force: true });
      return failed(`the snapshot from ${s.endpoint} ended after ${size} of ${expected} bytes; ${file} was not written`);
    }
    await rename(tmp, file);
    await syncDir(dirname(file));
    return ok(size);
  } catch (e) {
    await rm(tmp, { force: true });
    return failed(`cannot save the snapshot to ${file}: ${describe(e)}`);
  }
}

/** Makes the rename durable. Some platforms cannot open a directory; the rename happened regardless. */
async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // Best effort.
  }
}

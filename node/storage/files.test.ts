// writeFileAtomic writes pieces in order, flushed a slice at a time.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { writeFileAtomic } from "./files.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

describe("writeFileAtomic", () => {
  test.each([1, 7, 64, 1 << 20])("pieces that cross the flush boundaries (every %i bytes) arrive whole and in order", async (flushEvery) => {
    const dir = mkdtempSync(join(tmpdir(), "concord-files-"));
    dirs.push(dir);
    const parts = [bytes(5, 1), bytes(0, 2), bytes(130, 3), bytes(64, 4), bytes(1, 5)];
    await writeFileAtomic(join(dir, "f"), parts, flushEvery);
    const want = Buffer.concat(parts.map((p) => Buffer.from(p)));
    expect(Buffer.from(readFileSync(join(dir, "f"))).equals(want)).toBe(true);
    expect(readdirSync(dir)).toEqual(["f"]);
  });

  test("a flush size that is not a positive integer is refused before anything is written", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-files-"));
    dirs.push(dir);
    for (const bad of [0, -1, 1.5, Number.NaN]) await expect(writeFileAtomic(join(dir, "f"), bytes(3, 0), bad)).rejects.toThrow(/flushEvery/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

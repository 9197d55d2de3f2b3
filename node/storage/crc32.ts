// CRC-32 (IEEE 802.3, the polynomial of zlib and gzip) over record and
// snapshot bytes. Node's zlib.crc32 (22.2+) runs native code; the table
// version is the fallback and the reference the tests compare it against.

import * as zlib from "node:zlib";

const table: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Table-driven CRC-32, one byte at a time. `prev` continues an earlier checksum. */
export function crc32Table(data: Uint8Array, prev = 0): number {
  let c = ~prev >>> 0;
  for (const b of data) c = (table[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return ~c >>> 0;
}

type Crc32 = (data: Uint8Array, prev?: number) => number;

// Looked up dynamically: the Node typings always declare it, older runtimes lack it.
const native: unknown = (zlib as Record<string, unknown>)["crc32"];

/** CRC-32 of `data`, continuing from `prev` (0 for a fresh checksum). */
export const crc32: Crc32 = typeof native === "function" ? (native as Crc32) : crc32Table;

export const crc32IsNative: boolean = typeof native === "function";

/**
 * crc32(data, prev) in steps of `chunkBytes`, yielding between them, so that
 * a caller can checksum a large buffer (a snapshot of tens of MB takes
 * 10-20 ms in one go) without holding its event loop that long.
 */
export function* crc32Steps(data: Uint8Array, prev = 0, chunkBytes = 1 << 20): Generator<void, number, void> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) throw new Error(`crc32Steps: bad chunk size ${chunkBytes}`);
  let c = prev;
  for (let off = 0; off < data.byteLength; off += chunkBytes) {
    if (off > 0) yield;
    c = crc32(data.subarray(off, Math.min(data.byteLength, off + chunkBytes)), c);
  }
  return c;
}

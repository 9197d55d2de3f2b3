// Binary primitives for commands and snapshots.
//
//   uvarint  LEB128, 7 bits per byte, least significant first; at most 8
//            bytes and at most 2^53 - 1 (so it is exact as a JS number).
//            Canonical only: a multi-byte varint may not end in a zero byte,
//            so every number has exactly one encoding.
//   bytes    uvarint length, then the bytes.
//   string   uvarint UTF-8 length, then UTF-8. Decoding is strict (invalid
//            UTF-8 is an error, a BOM is kept), so decode(encode(s)) === s
//            for every well-formed string.
//
// The Reader never throws on bad input: the first problem is recorded in
// `error` and later reads return zeros, so a decoder checks once at the end
// (and before loops whose length came from the input).

import { utf8Length } from "./key.ts";

export function sizeUvarint(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

export function sizeBytes(b: Uint8Array): number {
  return sizeUvarint(b.length) + b.length;
}

export function sizeString(s: string): number {
  const n = utf8Length(s);
  return sizeUvarint(n) + n;
}

export class Writer {
  private buf: Uint8Array;
  private pos = 0;

  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  /**
   * A writer of exactly `capacity` bytes whose buffer is not zeroed first,
   * for a caller that writes every byte and checks that it did (length ===
   * capacity) before using the result: zeroing a snapshot's tens of
   * megabytes takes milliseconds in one go. The result is a plain
   * Uint8Array over memory of its own (never a pooled Buffer).
   */
  static unzeroed(capacity: number): Writer {
    const w = new Writer(0);
    w.buf = new Uint8Array(Buffer.allocUnsafeSlow(capacity).buffer, 0, capacity);
    return w;
  }

  get length(): number {
    return this.pos;
  }

  /** The bytes the buffer holds now (it grows when a write needs more). */
  get capacity(): number {
    return this.buf.length;
  }

  u8(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  uvarint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`wire: cannot encode ${n} as a uvarint`);
    // Exact sizes stay exact: room for the longest uvarint is only required near the end.
    if (this.pos + 8 > this.buf.length) this.ensure(sizeUvarint(n));
    const buf = this.buf;
    let p = this.pos;
    while (n >= 0x80000000) {
      buf[p++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    while (n >= 0x80) {
      buf[p++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[p++] = n;
    this.pos = p;
  }

  bytes(b: Uint8Array): void {
    this.uvarint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  string(s: string): void {
    const n = utf8Length(s);
    this.uvarint(n);
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    if (n === s.length) {
      for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    } else {
      for (let i = 0; i < s.length; i++) {
        let c = s.charCodeAt(i);
        if (c < 0x80) {
          buf[p++] = c;
        } else if (c < 0x800) {
          buf[p++] = 0xc0 | (c >> 6);
          buf[p++] = 0x80 | (c & 0x3f);
        } else {
          const d = s.charCodeAt(i + 1);
          if (c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            buf[p++] = 0xf0 | (c >> 18);
            buf[p++] = 0x80 | ((c >> 12) & 0x3f);
          } else {
            // BMP character, or a lone surrogate written as WTF-8, which a
            // strict decoder rejects: the key is never silently altered.
            buf[p++] = 0xe0 | (c >> 12);
          }
          buf[p++] = 0x80 | ((c >> 6) & 0x3f);
          buf[p++] = 0x80 | (c & 0x3f);
        }
      }
    }
    if (p !== this.pos + n) throw new Error("wire: UTF-8 length mismatch");
    this.pos = p;
  }

  /** The bytes written. No copy when the capacity was exact. */
  finish(): Uint8Array {
    return this.pos === this.buf.length ? this.buf : this.buf.slice(0, this.pos);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = Math.max(64, this.buf.length * 2);
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export class Reader {
  private readonly buf: Uint8Array;
  pos = 0;
  /** The first problem found, or null. */
  error: string | null = null;
  /** Where the first problem was found. */
  errorAt = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** No problem found so far. (A method, not a getter, so that type narrowing does not cache it.) */
  ok(): boolean {
    return this.error === null;
  }

  fail(reason: string): void {
    if (this.error !== null) return;
    this.error = reason;
    this.errorAt = this.pos;
    this.pos = this.buf.length; // later reads see truncation and return zeros
  }

  u8(): number {
    if (this.pos >= this.buf.length) {
      this.fail("truncated");
      return 0;
    }
    return this.buf[this.pos++] ?? 0;
  }

  uvarint(): number {
    const buf = this.buf;
    let p = this.pos;
    let b = buf[p];
    if (b !== undefined && b < 0x80) {
      this.pos = p + 1;
      return b;
    }
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      b = buf[p++];
      if (b === undefined) {
        this.fail("truncated varint");
        return 0;
      }
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (b === 0 && i > 0) {
          this.fail("non-canonical varint");
          return 0;
        }
        if (result > Number.MAX_SAFE_INTEGER) {
          this.fail("varint exceeds 2^53 - 1");
          return 0;
        }
        this.pos = p;
        return result;
      }
      mul *= 128;
    }
    this.fail("varint longer than 8 bytes");
    return 0;
  }

  /** A length or count, checked against the bytes left given each item's minimum size. */
  count(minItemBytes: number): number {
    const n = this.uvarint();
    if (n * minItemBytes > this.remaining) {
      this.fail(`count ${n} exceeds the remaining ${this.remaining} bytes`);
      return 0;
    }
    return n;
  }

  /** A length-prefixed byte string, copied (it must not alias the input buffer, which the caller may reuse). */
  bytes(): Uint8Array {
    const n = this.count(1);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A length-prefixed byte string as a view of the input: only for an input that is never reused or changed. */
  view(): Uint8Array {
    const n = this.count(1);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    const n = this.count(1);
    const start = this.pos;
    const end = start + n;
    this.pos = end;
    const buf = this.buf;
    // ASCII fast path: most keys are ASCII paths, and TextDecoder's call overhead dominates short strings.
    if (n <= 256) {
      let ascii = true;
      for (let i = start; i < end; i++) {
        if ((buf[i] ?? 0) >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[]);
    }
    try {
      return utf8.decode(buf.subarray(start, end));
    } catch {
      // TextDecoder's only way to report invalid UTF-8.
      this.pos = start;
      this.fail("invalid UTF-8");
      return "";
    }
  }

  /** Records an error unless every byte was consumed. */
  end(): void {
    if (this.error === null && this.pos !== this.buf.length) this.fail(`${this.buf.length - this.pos} trailing bytes`);
  }
}

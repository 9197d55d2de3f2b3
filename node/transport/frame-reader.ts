// Splits a byte stream into length-prefixed frames ([u32 big-endian length]
// [payload]), whatever the chunk boundaries. Memory grows only with bytes that
// actually arrived: a garbage length does not allocate, and a large frame is
// assembled with one copy however many chunks it took.

import { FRAME_HEADER_BYTES } from "./wire.ts";

export type FramingError =
  | { readonly type: "FrameTooLarge"; readonly length: number; readonly limit: number }
  | { readonly type: "EmptyFrame" };

export function describeFramingError(e: FramingError): string {
  switch (e.type) {
    case "FrameTooLarge":
      return `frame of ${e.length} bytes exceeds the limit of ${e.limit} bytes`;
    case "EmptyFrame":
      return "empty frame";
  }
}

export class FrameReader {
  /** The largest payload accepted; may be raised once a connection is authenticated. */
  maxFrameBytes: number;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  /** The length of the frame being assembled, or -1 while reading a header. */
  private bodyLength = -1;
  /** Invariant: the sum of the parts' lengths is bodyFill < bodyLength. */
  private parts: Uint8Array[] = [];
  private bodyFill = 0;
  private broken: FramingError | null = null;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /**
   * Feeds one chunk. `onFrame` gets each complete payload, a view that is
   * valid only during the call, and returns false to stop reading (the caller
   * closed the connection). A framing error is final: the stream cannot be
   * resynchronised, so every later push returns it too.
   */
  push(chunk: Uint8Array, onFrame: (payload: Uint8Array) => boolean): FramingError | null {
    if (this.broken !== null) return this.broken;
    let off = 0;
    while (off < chunk.byteLength) {
      if (this.bodyLength < 0) {
        let length: number;
        if (this.headerFill === 0 && chunk.byteLength - off >= FRAME_HEADER_BYTES) {
          length = new DataView(chunk.buffer, chunk.byteOffset + off, FRAME_HEADER_BYTES).getUint32(0);
          off += FRAME_HEADER_BYTES;
        } else {
          const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.byteLength - off);
          this.header.set(chunk.subarray(off, off + n), this.headerFill);
          this.headerFill += n;
          off += n;
          if (this.headerFill < FRAME_HEADER_BYTES) break;
          this.headerFill = 0;
          length = new DataView(this.header.buffer).getUint32(0);
        }
        if (length === 0) return (this.broken = { type: "EmptyFrame" });
        if (length > this.maxFrameBytes) return (this.broken = { type: "FrameTooLarge", length, limit: this.maxFrameBytes });
        if (chunk.byteLength - off >= length) {
          // The common case: the whole frame is in this chunk; no copy.
          const payload = chunk.subarray(off, off + length);
          off += length;
          if (!onFrame(payload)) return null;
        } else {
          this.bodyLength = length;
        }
        continue;
      }
      const n = Math.min(this.bodyLength - this.bodyFill, chunk.byteLength - off);
      this.parts.push(chunk.subarray(off, off + n));
      this.bodyFill += n;
      off += n;
      if (this.bodyFill < this.bodyLength) break;
      const payload = concat(this.parts, this.bodyLength);
      this.parts = [];
      this.bodyFill = 0;
      this.bodyLength = -1;
      if (!onFrame(payload)) return null;
    }
    return null;
  }

  /** Bytes of an incomplete frame held so far. */
  get buffered(): number {
    return this.headerFill + this.bodyFill;
  }
}

function concat(parts: readonly Uint8Array[], length: number): Uint8Array {
  const only = parts[0];
  if (parts.length === 1 && only !== undefined) return only;
  const out = new Uint8Array(length);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.byteLength;
  }
  return out;
}

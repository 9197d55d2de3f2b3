// The data of a normal Raft entry proposed by a client request: who proposed
// it (member id and a sequence number, so that the proposer can answer the
// request when the entry is applied) and what it asks the state machine to do.

import type { DecodeError } from "../raft/codec.ts";
import { Reader, Writer, decodeWith } from "../raft/codec.ts";

export type EnvelopeKind = "kv" | "member";

export interface Envelope {
  readonly kind: EnvelopeKind;
  /** The proposing member's id. */
  readonly origin: string;
  /** Unique per origin (per process run, with the origin's random epoch). */
  readonly seq: number;
  readonly payload: Uint8Array;
}

const version = 1;
const kinds: readonly EnvelopeKind[] = ["kv", "member"];

export function encodeEnvelope(e: Envelope): Uint8Array {
  const w = new Writer(16 + e.origin.length + e.payload.byteLength);
  w.u8(version);
  w.u8(kinds.indexOf(e.kind));
  w.str(e.origin);
  w.uint(e.seq);
  w.bytes(e.payload);
  return w.finish().slice();
}

/**
 * The payload is a view of `data`, not a copy: a log entry's data is never
 * changed, and the key-value store keeps a put's value as a view of it in
 * turn, so a write's bytes are held once (see decodeCommand).
 */
export function decodeEnvelope(data: Uint8Array): Envelope | DecodeError {
  return decodeWith(data, (r: Reader) => {
    const v = r.u8();
    if (v !== version) r.fail(`unknown envelope version ${v}`);
    const kind = kinds[r.u8()] ?? r.fail("unknown envelope kind");
    return { kind, origin: r.str(), seq: r.uint(), payload: r.view() };
  });
}

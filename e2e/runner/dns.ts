// The pod runner's cluster DNS: an authoritative-only server for one zone
// (e.g. cluster.local) over UDP, standing in for CoreDNS's kubernetes plugin.
// It never recurses or forwards (there is no upstream in the test
// environment): names outside the zone are REFUSED.
//
// Layers, each testable alone:
//   parseQuery      bytes → query, or why not (RFC 1035 §4.1, EDNS0 per RFC 6891)
//   answerQuery     query + records → response model (what to say)
//   encodeResponse  response model → bytes (how to say it: compression, truncation, OPT)
//   handlePacket    the three composed; never throws, whatever the bytes
//   DnsServer       a dgram socket around handlePacket
//
// Not supported, by design: TCP (a client that sees TC and retries over TCP
// fails; clients that send EDNS get up to 1232 bytes over UDP), zone
// transfers, DNSSEC, CNAME/ExternalName, PTR for pod IPs.

import { createSocket } from "node:dgram";
import type { Socket } from "node:dgram";
import { isIPv6 } from "node:net";

export const RRType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const RCode = {
  NoError: 0,
  FormErr: 1,
  ServFail: 2,
  NxDomain: 3,
  NotImp: 4,
  Refused: 5,
  /** Extended (12-bit) rcode: only expressible with an OPT record. */
  BadVers: 16,
} as const;

export const CLASS_IN = 1;
const CLASS_ANY = 255;

/** CoreDNS's kubernetes plugin default: short, because pods come and go. */
export const DEFAULT_TTL_SECONDS = 5;
/** The largest UDP reply to a client that sent no OPT record (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_LIMIT = 512;
/** What this server advertises and honours with EDNS: the DNS Flag Day 2020 size, which avoids IP fragmentation. */
export const EDNS_UDP_PAYLOAD = 1232;

const HEADER_BYTES = 12;
const MAX_NAME_WIRE_BYTES = 255;
const MAX_LABEL_BYTES = 63;
/** An OPT record with no options: root owner (1), type, class, ttl, rdlength. */
const OPT_RECORD_BYTES = 11;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_CD = 0x0010;
const EDNS_FLAG_DO = 0x8000;

// ── What the records provider answers ────────────────────────────────────────

export interface SrvTarget {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  /** A domain name without trailing dot, e.g. "web-0.web.ns.svc.cluster.local". */
  readonly target: string;
}

/**
 * What a name holds. Found and NoData both mean the name exists; the server
 * picks the records of the queried type and answers NODATA when there are
 * none. NoData is for names with no records at all (empty non-terminals such
 * as "svc.cluster.local").
 */
export type DnsAnswer =
  | { readonly type: "Found"; readonly a: readonly string[]; readonly srv: readonly SrvTarget[] }
  | { readonly type: "NoData" }
  | { readonly type: "NxDomain" }
  | { readonly type: "NotAuthoritative" };

export interface DnsRecords {
  /**
   * `name` is lower-case, without trailing dot, and inside the served zone.
   * Bytes other than [a-z0-9_-] in a label are escaped as `\DDD` (RFC 1035
   * §5.1), so such a name never equals a Kubernetes name.
   */
  lookup(name: string): DnsAnswer;
}

// ── Parsing ──────────────────────────────────────────────────────────────────

/** The header fields a reply echoes. */
export interface QueryHeader {
  readonly id: number;
  readonly opcode: number;
  readonly rd: boolean;
  readonly cd: boolean;
}

export interface Question {
  /** The labels as sent (case preserved: the reply echoes them byte for byte). */
  readonly labels: readonly Uint8Array[];
  /** Lower-case presentation form without trailing dot; see DnsRecords.lookup. */
  readonly name: string;
  readonly qtype: number;
  readonly qclass: number;
}

export interface Edns {
  /** As the client advertised it; values below 512 mean 512 (RFC 6891 §6.2.3). */
  readonly udpPayloadSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
}

export interface ParsedQuery {
  readonly type: "Query";
  readonly header: QueryHeader;
  readonly question: Question;
  readonly edns: Edns | null;
}

/** A query with an opcode other than QUERY: answered NOTIMP without reading its body. */
export interface UnsupportedOpcode {
  readonly type: "NotImplemented";
  readonly header: QueryHeader;
}

/** Answered FORMERR when the header was readable; dropped when `header` is null. */
export interface MalformedQuery {
  readonly type: "Malformed";
  readonly header: QueryHeader | null;
  readonly reason: string;
}

export type ParseResult = ParsedQuery | UnsupportedOpcode | MalformedQuery;

type NameRead = { readonly ok: true; readonly labels: Uint8Array[]; readonly end: number } | { readonly ok: false; readonly reason: string };

/**
 * Reads a domain name at `start`, following compression pointers (RFC 1035
 * §4.1.4). `end` is the offset just past the name where it starts, not where
 * a pointer led.
 */
function readName(buf: Uint8Array, view: DataView, start: number): NameRead {
  const labels: Uint8Array[] = [];
  let pos = start;
  let end = -1;
  let wireBytes = 1;
  // Invariant: every pointer targets an offset below the previous target (and
  // the first one below `start`), so following pointers terminates. Real
  // compressors only point at names written earlier, which satisfies this.
  let pointerBound = start;
  for (;;) {
    if (pos >= buf.byteLength) return { ok: false, reason: "name runs past the end of the packet" };
    const len = view.getUint8(pos);
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 2 > buf.byteLength) return { ok: false, reason: "compression pointer runs past the end of the packet" };
      const target = view.getUint16(pos) & 0x3fff;
      if (target >= pointerBound) return { ok: false, reason: `compression pointer at ${pos} to ${target} does not point backwards` };
      if (end < 0) end = pos + 2;
      pointerBound = target;
      pos = target;
      continue;
    }
    if (kind !== 0) return { ok: false, reason: `label type 0x${kind.toString(16)} at ${pos} is not supported` };
    if (len === 0) return { ok: true, labels, end: end < 0 ? pos + 1 : end };
    if (pos + 1 + len > buf.byteLength) return { ok: false, reason: "label runs past the end of the packet" };
    wireBytes += 1 + len;
    if (wireBytes > MAX_NAME_WIRE_BYTES) return { ok: false, reason: `name longer than ${MAX_NAME_WIRE_BYTES} bytes` };
    // A copy: a Buffer's slice() would share the datagram's memory.
    labels.push(Uint8Array.from(buf.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
}

function isPlainByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x5f;
}

function lowerByte(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
}

/** One label in lower-case presentation form; anything but [a-z0-9_-] becomes \DDD. */
function presentLabel(label: Uint8Array): string {
  let s = "";
  for (const raw of label) {
    const b = lowerByte(raw);
    s += isPlainByte(b) ? String.fromCharCode(b) : `\\${b.toString().padStart(3, "0")}`;
  }
  return s;
}

export function presentName(labels: readonly Uint8Array[]): string {
  return labels.map(presentLabel).join(".");
}

function malformed(header: QueryHeader | null, reason: string): MalformedQuery {
  return { type: "Malformed", header, reason };
}

/** Parses a query datagram. Never throws. */
export function parseQuery(buf: Uint8Array): ParseResult {
  if (buf.byteLength < HEADER_BYTES) return malformed(null, `${buf.byteLength} bytes, shorter than a header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const flags = view.getUint16(2);
  // Never answer a response: two servers could otherwise bounce errors forever.
  if ((flags & FLAG_QR) !== 0) return malformed(null, "a response, not a query");
  const header: QueryHeader = {
    id: view.getUint16(0),
    opcode: (flags >> 11) & 0xf,
    rd: (flags & FLAG_RD) !== 0,
    cd: (flags & FLAG_CD) !== 0,
  };
  if (header.opcode !== 0) return { type: "NotImplemented", header };
  const qdcount = view.getUint16(4);
  const ancount = view.getUint16(6);
  const nscount = view.getUint16(8);
  const arcount = view.getUint16(10);
  if (qdcount !== 1) return malformed(header, `${qdcount} questions, want 1`);

  const name = readName(buf, view, HEADER_BYTES);
  if (!name.ok) return malformed(header, `question: ${name.reason}`);
  let pos = name.end;
  if (pos + 4 > buf.byteLength) return malformed(header, "question: type and class run past the end of the packet");
  const question: Question = { labels: name.labels, name: presentName(name.labels), qtype: view.getUint16(pos), qclass: view.getUint16(pos + 2) };
  pos += 4;
  if (question.qtype === RRType.OPT) return malformed(header, "OPT is not a question type");

  // Answer and authority records are skipped; the additional section may hold an OPT.
  let edns: Edns | null = null;
  const records = ancount + nscount + arcount;
  for (let i = 0; i < records; i++) {
    const owner = readName(buf, view, pos);
    if (!owner.ok) return malformed(header, `record ${i}: ${owner.reason}`);
    pos = owner.end;
    if (pos + 10 > buf.byteLength) return malformed(header, `record ${i}: fixed fields run past the end of the packet`);
    const type = view.getUint16(pos);
    const rrclass = view.getUint16(pos + 2);
    const ttl = view.getUint32(pos + 4);
    const rdlength = view.getUint16(pos + 8);
    pos += 10;
    if (pos + rdlength > buf.byteLength) return malformed(header, `record ${i}: data runs past the end of the packet`);
    pos += rdlength;
    if (type !== RRType.OPT) continue;
    if (i < ancount + nscount) return malformed(header, "OPT record outside the additional section");
    if (edns !== null) return malformed(header, "more than one OPT record");
    if (owner.labels.length !== 0) return malformed(header, "OPT record owner is not the root");
    edns = { udpPayloadSize: rrclass, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & EDNS_FLAG_DO) !== 0 };
  }
  // Bytes after the last record are ignored, as most servers do.
  return { type: "Query", header, question, edns };
}

// ── Answering ────────────────────────────────────────────────────────────────

export type RData =
  | { readonly type: "A"; readonly address: string }
  | { readonly type: "SRV"; readonly srv: SrvTarget }
  | {
      readonly type: "SOA";
      readonly mname: string;
      readonly rname: string;
      readonly serial: number;
      readonly refresh: number;
      readonly retry: number;
      readonly expire: number;
      readonly minimum: number;
    };

export interface ResourceRecord {
  /** Presentation form without trailing dot; `\DDD` escapes allowed. */
  readonly owner: string;
  readonly ttl: number;
  readonly data: RData;
}

export interface DnsResponse {
  readonly header: QueryHeader;
  /** Up to 12 bits; values above 15 need `edns`. */
  readonly rcode: number;
  readonly authoritative: boolean;
  /** Echoed as sent; null for header-only replies (FORMERR, NOTIMP). */
  readonly question: Question | null;
  readonly answers: readonly ResourceRecord[];
  readonly authority: readonly ResourceRecord[];
  /** Set iff the query carried an OPT record: the reply then carries one too. */
  readonly edns: { readonly clientPayloadSize: number; readonly dnssecOk: boolean } | null;
}

export interface AnswerContext {
  /** Lower-case, no trailing dot; checked by answerContext(). */
  readonly zone: string;
  readonly records: DnsRecords;
  readonly ttlSeconds: number;
  /** The SOA serial; nothing transfers the zone, so it only has to be plausible. */
  readonly serial: number;
}

const ZONE_LABEL = /^[a-z0-9_-]{1,63}$/;

/** Validates and normalises a zone and TTL; throws on a configuration bug. */
export function answerContext(opts: { zone: string; records: DnsRecords; ttlSeconds?: number; serial?: number }): AnswerContext {
  const zone = opts.zone.toLowerCase().replace(/\.$/, "");
  const labels = zone.split(".");
  if (zone === "" || !labels.every((l) => ZONE_LABEL.test(l)) || zone.length + 2 > MAX_NAME_WIRE_BYTES) {
    throw new Error(`dns: zone ${JSON.stringify(opts.zone)} is not a valid domain name`);
  }
  const ttlSeconds = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0 || ttlSeconds > 0x7fffffff) throw new Error(`dns: TTL ${ttlSeconds} is not in [0, 2^31)`);
  const serial = opts.serial ?? 1;
  if (!Number.isInteger(serial) || serial < 0 || serial > 0xffffffff) throw new Error(`dns: SOA serial ${serial} is not a uint32`);
  return { zone, records: opts.records, ttlSeconds, serial };
}

/** Whether `name` is `zone` or below it. Safe on escaped names: a literal dot in a label is `\046`. */
export function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/** The zone's SOA, as CoreDNS's kubernetes plugin writes it; sent with negative answers so that resolvers cache them for one TTL (RFC 2308). */
function soaRecord(ctx: AnswerContext): ResourceRecord {
  return {
    owner: ctx.zone,
    ttl: ctx.ttlSeconds,
    data: {
      type: "SOA",
      mname: `ns.dns.${ctx.zone}`,
      rname: `hostmaster.${ctx.zone}`,
      serial: ctx.serial,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: ctx.ttlSeconds,
    },
  };
}

function replyEdns(query: ParsedQuery): DnsResponse["edns"] {
  return query.edns === null ? null : { clientPayloadSize: query.edns.udpPayloadSize, dnssecOk: query.edns.dnssecOk };
}

/** A reply with no records. */
export function emptyResponse(query: ParsedQuery, rcode: number, authoritative: boolean): DnsResponse {
  return { header: query.header, rcode, authoritative, question: query.question, answers: [], authority: [], edns: replyEdns(query) };
}

/** A reply with the header only: for queries whose question could not be read or was not a QUERY. */
export function headerOnlyResponse(header: QueryHeader, rcode: number): DnsResponse {
  return { header, rcode, authoritative: false, question: null, answers: [], authority: [], edns: null };
}

/**
 * Decides the reply to a well-formed query. Calls `ctx.records.lookup` at most
 * once, only for names in the zone; throws only if that throws.
 */
export function answerQuery(query: ParsedQuery, ctx: AnswerContext): DnsResponse {
  if (query.edns !== null && query.edns.version > 0) return emptyResponse(query, RCode.BadVers, false);
  const q = query.question;
  if (q.qclass !== CLASS_IN && q.qclass !== CLASS_ANY) return emptyResponse(query, RCode.Refused, false);
  if (!inZone(q.name, ctx.zone)) return emptyResponse(query, RCode.Refused, false);
  if (q.qtype === RRType.AXFR || q.qtype === RRType.IXFR) return emptyResponse(query, RCode.Refused, false);

  const found = ctx.records.lookup(q.name);
  if (found.type === "NotAuthoritative") return emptyResponse(query, RCode.Refused, false);
  const apex = q.name === ctx.zone;
  // The apex always exists: it owns the SOA.
  if (found.type === "NxDomain" && !apex) return { ...emptyResponse(query, RCode.NxDomain, true), authority: [soaRecord(ctx)] };

  const ttl = ctx.ttlSeconds;
  let answers: ResourceRecord[] = [];
  switch (q.qtype) {
    case RRType.A:
    case RRType.ANY: // treated as A, as CoreDNS does (RFC 8482 allows a subset)
      if (found.type === "Found") answers = found.a.map((address) => ({ owner: q.name, ttl, data: { type: "A", address } }));
      break;
    case RRType.SRV:
      if (found.type === "Found") answers = found.srv.map((srv) => ({ owner: q.name, ttl, data: { type: "SRV", srv } }));
      break;
    case RRType.SOA:
      if (apex) answers = [soaRecord(ctx)];
      break;
    default:
      // AAAA and every other type: the name exists, so NODATA, never NXDOMAIN
      // (an NXDOMAIN for AAAA would make some resolvers drop the A answer too).
      break;
  }
  return { ...emptyResponse(query, RCode.NoError, true), answers, authority: answers.length === 0 ? [soaRecord(ctx)] : [] };
}

// ── Encoding ─────────────────────────────────────────────────────────────────

/** A growable byte buffer with big-endian writers. */
class Writer {
  private buf = new Uint8Array(CLASSIC_UDP_LIMIT);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.byteLength) return;
    const bigger = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n));
    bigger.set(this.buf.subarray(0, this.length));
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }

  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v);
    this.length += 4;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.byteLength);
    this.buf.set(b, this.length);
    this.length += b.byteLength;
  }

  setU16(at: number, v: number): void {
    this.view.setUint16(at, v);
  }

  /** Drops everything from `length` on. */
  cut(length: number): void {
    this.length = length;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Presentation form (`\DDD` and `\X` escapes, optional trailing dot) to wire labels; throws on names a records provider should never produce. */
export function nameToLabels(name: string): Uint8Array[] {
  if (name === "" || name === ".") return [];
  const labels: Uint8Array[] = [];
  let current: number[] = [];
  let wireBytes = 1;
  const fail = (why: string): never => {
    throw new Error(`dns: name ${JSON.stringify(name)} ${why}`);
  };
  const endLabel = (): void => {
    if (current.length === 0 || current.length > MAX_LABEL_BYTES) fail(`has a label of ${current.length} bytes`);
    wireBytes += 1 + current.length;
    labels.push(Uint8Array.from(current));
    current = [];
  };
  const printable = (c: number): boolean => c > 0x20 && c < 0x7f;
  let i = 0;
  for (; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2e) {
      endLabel();
      if (i === name.length - 1) break; // the trailing dot of an absolute name
    } else if (c === 0x5c) {
      const digits = /^\d{3}/.exec(name.slice(i + 1, i + 4));
      const next = name.charCodeAt(i + 1);
      if (digits !== null && Number(digits[0]) <= 255) {
        current.push(Number(digits[0]));
        i += 3;
      } else if (printable(next)) {
        current.push(next);
        i += 1;
      } else {
        fail("has a backslash not followed by DDD or a printable character");
      }
    } else if (printable(c)) {
      current.push(c);
    } else {
      fail("has a character outside printable ASCII");
    }
  }
  if (i === name.length) endLabel();
  if (wireBytes > MAX_NAME_WIRE_BYTES) fail(`is longer than ${MAX_NAME_WIRE_BYTES} bytes`);
  return labels;
}

/** A key for a name suffix, equal for names equal up to ASCII case. */
function suffixKey(labels: readonly Uint8Array[], from: number): string {
  let key = "";
  for (let i = from; i < labels.length; i++) {
    const label = labels[i] ?? new Uint8Array();
    key += String.fromCharCode(label.byteLength);
    for (const b of label) key += String.fromCharCode(lowerByte(b));
  }
  return key;
}

/** Writes names, replacing any suffix already written with a pointer to it (RFC 1035 §4.1.4). */
class NameWriter {
  private readonly offsets = new Map<string, number>();

  write(w: Writer, labels: readonly Uint8Array[], compress: boolean): void {
    for (let i = 0; i < labels.length; i++) {
      const key = suffixKey(labels, i);
      const at = this.offsets.get(key);
      if (compress && at !== undefined) {
        w.u16(0xc000 | at);
        return;
      }
      // Pointers have 14 bits; later suffixes simply stay uncompressed.
      if (at === undefined && w.length < 0x4000) this.offsets.set(key, w.length);
      const label = labels[i] ?? new Uint8Array();
      w.u8(label.byteLength);
      w.bytes(label);
    }
    w.u8(0);
  }
}

function parseIPv4(address: string): number[] {
  const parts = address.split(".");
  const octets = parts.map((p) => (/^(0|[1-9]\d{0,2})$/.test(p) ? Number(p) : NaN));
  if (octets.length !== 4 || !octets.every((o) => o <= 255)) throw new Error(`dns: ${JSON.stringify(address)} is not an IPv4 address`);
  return octets;
}

function checkU16(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new Error(`dns: SRV ${what} ${v} is not a uint16`);
  return v;
}

function writeRecord(w: Writer, names: NameWriter, rr: ResourceRecord): void {
  names.write(w, nameToLabels(rr.owner), true);
  const data = rr.data;
  w.u16(data.type === "A" ? RRType.A : data.type === "SRV" ? RRType.SRV : RRType.SOA);
  w.u16(CLASS_IN);
  w.u32(rr.ttl);
  const rdlengthAt = w.length;
  w.u16(0);
  const rdataStart = w.length;
  switch (data.type) {
    case "A":
      for (const octet of parseIPv4(data.address)) w.u8(octet);
      break;
    case "SRV":
      w.u16(checkU16("priority", data.srv.priority));
      w.u16(checkU16("weight", data.srv.weight));
      w.u16(checkU16("port", data.srv.port));
      // RFC 2782: the SRV target is never compressed.
      names.write(w, nameToLabels(data.srv.target), false);
      break;
    case "SOA":
      names.write(w, nameToLabels(data.mname), true);
      names.write(w, nameToLabels(data.rname), true);
      w.u32(data.serial);
      w.u32(data.refresh);
      w.u32(data.retry);
      w.u32(data.expire);
      w.u32(data.minimum);
      break;
  }
  w.setU16(rdlengthAt, w.length - rdataStart);
}

/** The largest reply the client accepts over UDP. */
export function responseLimit(edns: DnsResponse["edns"]): number {
  if (edns === null) return CLASSIC_UDP_LIMIT;
  return Math.min(Math.max(edns.clientPayloadSize, CLASSIC_UDP_LIMIT), EDNS_UDP_PAYLOAD);
}

/**
 * Encodes a reply of at most responseLimit(r.edns) bytes. Answers that do not
 * fit are left off and TC is set; the records that fit stay (RFC 2181 §9), and
 * the OPT record always stays (RFC 6891 §7). Throws on invalid record data
 * (a bug in the records provider).
 */
export function encodeResponse(r: DnsResponse): Uint8Array {
  if (r.rcode > 0xf && r.edns === null) throw new Error(`dns: rcode ${r.rcode} needs an OPT record`);
  const limit = responseLimit(r.edns) - (r.edns === null ? 0 : OPT_RECORD_BYTES);
  const w = new Writer();
  const names = new NameWriter();
  for (let i = 0; i < HEADER_BYTES; i++) w.u8(0);
  if (r.question !== null) {
    names.write(w, r.question.labels, true);
    w.u16(r.question.qtype);
    w.u16(r.question.qclass);
  }
  // Answers first, then authority; the first record that does not fit ends both.
  const counts = [0, 0];
  let truncated = false;
  for (const [section, records] of [r.answers, r.authority].entries()) {
    for (const rr of records) {
      const mark = w.length;
      writeRecord(w, names, rr);
      if (w.length > limit) {
        // Names of the dropped record stay in the compression map, but nothing
        // written after truncation can point at them: the OPT owner is the root.
        w.cut(mark);
        truncated = true;
        break;
      }
      counts[section] = (counts[section] ?? 0) + 1;
    }
    if (truncated) break;
  }
  const [ancount = 0, nscount = 0] = counts;

  if (r.edns !== null) {
    w.u8(0);
    w.u16(RRType.OPT);
    w.u16(EDNS_UDP_PAYLOAD);
    w.u8(r.rcode >> 4);
    w.u8(0);
    w.u16(r.edns.dnssecOk ? EDNS_FLAG_DO : 0);
    w.u16(0);
  }

  w.setU16(0, r.header.id);
  w.setU16(
    2,
    FLAG_QR |
      ((r.header.opcode & 0xf) << 11) |
      (r.authoritative ? FLAG_AA : 0) |
      (truncated ? FLAG_TC : 0) |
      (r.header.rd ? FLAG_RD : 0) |
      (r.header.cd ? FLAG_CD : 0) |
      (r.rcode & 0xf),
  );
  w.setU16(4, r.question === null ? 0 : 1);
  w.setU16(6, ancount);
  w.setU16(8, nscount);
  w.setU16(10, r.edns === null ? 0 : 1);
  return w.finish();
}

// ── One datagram in, at most one out ─────────────────────────────────────────

export type PacketOutcome =
  | { readonly type: "Reply"; readonly bytes: Uint8Array }
  | { readonly type: "Drop"; readonly reason: string }
  /** Answering threw (a bug in the records provider): the bytes are a SERVFAIL to send anyway. */
  | { readonly type: "Failed"; readonly bytes: Uint8Array; readonly error: unknown };

/** Never throws, whatever `packet` holds. */
export function handlePacket(packet: Uint8Array, ctx: AnswerContext): PacketOutcome {
  const query = parseQuery(packet);
  switch (query.type) {
    case "Malformed":
      if (query.header === null) return { type: "Drop", reason: query.reason };
      return { type: "Reply", bytes: encodeResponse(headerOnlyResponse(query.header, RCode.FormErr)) };
    case "NotImplemented":
      return { type: "Reply", bytes: encodeResponse(headerOnlyResponse(query.header, RCode.NotImp)) };
    case "Query":
      try {
        return { type: "Reply", bytes: encodeResponse(answerQuery(query, ctx)) };
      } catch (error) {
        return { type: "Failed", bytes: encodeResponse(emptyResponse(query, RCode.ServFail, false)), error };
      }
  }
}

// ── The socket ───────────────────────────────────────────────────────────────

export interface DnsServerOptions {
  readonly host: string;
  /** 0 picks a free port; address() tells which. */
  readonly port: number;
  readonly records: DnsRecords;
  /** e.g. "cluster.local"; every other name is REFUSED. */
  readonly zone: string;
  readonly ttlSeconds?: number;
  /** Socket errors and records-provider bugs (answered SERVFAIL). Default: console.error. */
  readonly onError?: (err: unknown) => void;
}

export class DnsServer {
  private readonly socket: Socket;
  private closing: Promise<void> | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Binds the socket; rejects if it cannot (e.g. EADDRINUSE), and throws on an invalid zone or TTL. */
  static async start(opts: DnsServerOptions): Promise<DnsServer> {
    const ctx = answerContext({
      zone: opts.zone,
      records: opts.records,
      ...(opts.ttlSeconds === undefined ? {} : { ttlSeconds: opts.ttlSeconds }),
      serial: Math.floor(Date.now() / 1000) >>> 0,
    });
    const onError =
      opts.onError ??
      ((err: unknown) => {
        console.error("dns:", err);
      });
    const socket = createSocket({ type: isIPv6(opts.host) ? "udp6" : "udp4" });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.bind({ address: opts.host, port: opts.port }, () => {
          socket.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      socket.close();
      throw e;
    }
    socket.on("error", onError);
    socket.on("message", (msg, rinfo) => {
      // handlePacket does not throw; the guard keeps a bug in here from
      // taking the pod runner down with an uncaught exception.
      try {
        const outcome = handlePacket(msg, ctx);
        if (outcome.type === "Drop") return;
        if (outcome.type === "Failed") onError(outcome.error);
        socket.send(outcome.bytes, rinfo.port, rinfo.address, (err) => {
          if (err !== null) onError(err);
        });
      } catch (e) {
        onError(e);
      }
    });
    return new DnsServer(socket);
  }

  address(): { host: string; port: number } {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.socket.close(() => {
        resolve();
      });
    });
    return this.closing;
  }
}

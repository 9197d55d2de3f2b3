// watch: follows /v1/watch (Server-Sent Events) until Ctrl-C. When the
// stream breaks (the member stopped, a network fault, no data for a while)
// it reconnects, to the endpoints in order, with Last-Event-ID set to the
// last revision it printed in full, so that no event is lost or printed twice.

import { watchErrorSchema, watchEventSchema, watchProgressSchema } from "../api.ts";
import type { WatchEvent } from "../api.ts";
import type { StreamReply } from "../client.ts";
import { query, sleep } from "../client.ts";
import type { Command, Context } from "../command.ts";
import type { CtlError, Result } from "../errors.ts";
import { describe, fail, ok } from "../errors.ts";
import { jsonLine, showValue } from "../output.ts";
import { SseParser } from "../sse.ts";
import type { SseEvent } from "../sse.ts";

/** The server sends `progress` every 5 s; a stream silent for this long is presumed dead. */
const idleMs = 15_000;

export const watch: Command = {
  words: ["watch"],
  args: "KEY",
  arity: { min: 1, max: 1 },
  summary: "print changes to a key or prefix as they happen, until Ctrl-C",
  help: `Prints one line per event: the revision, PUT or DELETE, the key, and for a
put the value (with --prev-kv, the previous value after "was:"). -o json
prints each event as one JSON line instead.
Without --rev, starts after the current revision. If the connection breaks,
it reconnects (trying the endpoints in order) and resumes after the last
revision it printed, without gaps or repeats; a note goes to stderr. It stops
with an error only when the history it needs has been compacted.`,
  options: {
    prefix: { type: "boolean", help: "KEY is a prefix: watch every key under it" },
    rev: { type: "string", value: "N", help: "start at revision N (replaying history from there)" },
    "prev-kv": { type: "boolean", help: "include each key's previous value" },
  },
  run: async (ctx, a) => {
    const rev = a.int("rev", 1);
    if (!rev.ok) return rev;
    const stop = new AbortController();
    const unlisten = ctx.io.onInterrupt(() => {
      stop.abort();
    });
    try {
      return await follow(ctx, { key: a.arg(0), prefix: a.flag("prefix"), prevKv: a.flag("prev-kv"), from: rev.value }, stop.signal);
    } finally {
      unlisten();
    }
  },
};

export interface WatchSpec {
  readonly key: string;
  readonly prefix: boolean;
  readonly prevKv: boolean;
  readonly from: number | undefined;
}

/** Where the watch stands, across connections. */
export interface Position {
  /**
   * Every event at or below this revision has been printed: the
   * Last-Event-ID of the next connection. Null until the first connection
   * says where a watch without --rev starts.
   */
  after: number | null;
  /**
   * Events already printed of revision `after + 1` or later, whose last event
   * (the one with the id) has not arrived: a reconnect replays that
   * revision, and these are skipped.
   */
  partial: { revision: number; printed: number };
}

export type StreamEnd = { readonly type: "broken"; readonly why: string } | { readonly type: "resume"; readonly why: string };

async function follow(ctx: Context, spec: WatchSpec, signal: AbortSignal): Promise<Result<number>> {
  const pos: Position = { after: spec.from === undefined ? null : spec.from - 1, partial: { revision: 0, printed: 0 } };
  const path = `/v1/watch${query({ key: spec.key, prefix: spec.prefix, prevKv: spec.prevKv })}`;
  // A function, so that the checks after each await read the signal anew.
  const stopped = (): boolean => signal.aborted;
  let connected = false;
  let failures = 0;
  for (;;) {
    if (stopped()) return ok(0);
    const conn = new AbortController();
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (pos.after !== null) headers["Last-Event-ID"] = String(pos.after);
    const s = await ctx.client.stream({ method: "GET", path, headers, idempotent: true, signal: AbortSignal.any([signal, conn.signal]) });
    if (stopped()) return ok(0);
    if (!s.ok) {
      // A bad request stays bad; a cluster that cannot be reached at the start is an error.
      if (!connected || (s.error.type === "Api" && s.error.status < 500 && s.error.status !== 429)) return s;
      if (failures === 0) ctx.io.warn(`watch: cannot reconnect yet (${oneLine(s.error)}); retrying\n`);
      failures++;
      await sleep(Math.min(2000, 100 * 2 ** failures), signal);
      continue;
    }
    if (pos.after === null) pos.after = Number(s.value.headers.get("x-concord-revision") ?? "0");
    if (connected) ctx.io.warn(`watch: resumed on ${s.value.endpoint} after revision ${pos.after}\n`);
    connected = true;
    failures = 0;
    const end = await readStream(ctx, s.value, spec, pos, conn);
    if (!end.ok) return end;
    if (stopped()) return ok(0);
    if (end.value.type === "broken") ctx.io.warn(`watch: the stream from ${s.value.endpoint} broke (${end.value.why}); reconnecting\n`);
    else ctx.io.warn(`watch: ${end.value.why}; resuming\n`);
  }
}

async function readStream(ctx: Context, s: StreamReply, spec: WatchSpec, pos: Position, conn: AbortController): Promise<Result<StreamEnd>> {
  const reader = s.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  const current: Current = { revision: 0, seen: 0 };
  let idle = setTimeout(onIdle, idleMs);
  function onIdle(): void {
    conn.abort();
  }
  try {
    for (;;) {
      const { done, value } = await reader.read();
      clearTimeout(idle);
      idle = setTimeout(onIdle, idleMs);
      if (done) return ok({ type: "broken", why: "closed by the member" });
      for (const e of parser.push(decoder.decode(value, { stream: true }))) {
        const r = handle(ctx, s.endpoint, e, spec, pos, current);
        if (!r.ok) return r;
        if (r.value !== null) return ok(r.value);
      }
    }
  } catch (e) {
    return ok({ type: "broken", why: conn.signal.aborted ? `no data for ${idleMs / 1000}s` : describe(e) });
  } finally {
    clearTimeout(idle);
    conn.abort();
  }
}

/** The events of the revision being received on one connection. */
export interface Current {
  revision: number;
  seen: number;
}

/** Prints or skips one event; returns how the stream ends when it does. */
export function handle(ctx: Context, endpoint: string, e: SseEvent, spec: WatchSpec, pos: Position, current: Current): Result<StreamEnd | null> {
  let data: unknown;
  try {
    data = JSON.parse(e.data);
  } catch {
    return fail({ type: "Local", code: "BadResponse", message: `${endpoint} sent a watch event that is not JSON` });
  }
  switch (e.event) {
    case "put":
    case "delete": {
      const p = watchEventSchema.safeParse(data);
      if (!p.success) return fail({ type: "Local", code: "BadResponse", message: `${endpoint} sent an unexpected watch event` });
      const ev = p.data;
      if (current.revision !== ev.revision) {
        current.revision = ev.revision;
        current.seen = 0;
      }
      current.seen++;
      const printedBefore = pos.partial.revision === ev.revision ? pos.partial.printed : 0;
      const replayed = (pos.after !== null && ev.revision <= pos.after) || current.seen <= printedBefore;
      if (!replayed) {
        ctx.io.write(ctx.output === "json" ? jsonLine(ev) : eventLine(ev, spec.prevKv));
        if (pos.partial.revision !== ev.revision) pos.partial = { revision: ev.revision, printed: 0 };
        pos.partial.printed++;
      }
      if (e.id !== null && ev.revision > (pos.after ?? 0)) {
        pos.after = ev.revision;
        pos.partial = { revision: 0, printed: 0 };
      }
      return ok(null);
    }
    case "progress": {
      const p = watchProgressSchema.safeParse(data);
      // Everything up to the progress revision has been sent, in whole revisions.
      if (p.success && pos.partial.printed === 0 && p.data.revision > (pos.after ?? 0)) pos.after = p.data.revision;
      return ok(null);
    }
    case "error": {
      const p = watchErrorSchema.safeParse(data);
      if (!p.success) return fail({ type: "Local", code: "BadResponse", message: `${endpoint} ended the watch with an unexpected error event` });
      if (p.data.code === "SlowConsumer" && p.data.resumeRevision !== undefined) {
        pos.after = Math.max(pos.after ?? 0, p.data.resumeRevision - 1);
        return ok({ type: "resume", why: `${endpoint} cut the watch off as too slow at revision ${p.data.resumeRevision}` });
      }
      const { code, message, ...details } = p.data;
      return fail({ type: "Api", status: code === "Compacted" ? 410 : 400, code, message, endpoint, details });
    }
    default:
      return ok(null);
  }
}

function eventLine(ev: WatchEvent, withPrev: boolean): string {
  const value = ev.type === "put" ? ` ${showValue(ev)}` : "";
  const prev = withPrev ? ` (was: ${ev.prevKv === undefined ? "none" : showValue(ev.prevKv)})` : "";
  return `${ev.revision} ${ev.type.toUpperCase()} ${ev.key}${value}${prev}\n`;
}

function oneLine(e: CtlError): string {
  return e.type === "Usage" || e.type === "Unavailable" ? e.message : `${e.code}: ${e.message}`;
}

// The watch's bookkeeping across reconnects: a revision whose events were
// cut off midway is replayed by the server, and the events already printed
// are skipped (only a revision's last event carries the SSE id).

import { expect, test } from "vitest";
import { Client } from "./client.ts";
import type { Context } from "./command.ts";
import type { Current, Position, WatchSpec } from "./commands/watch.ts";
import { handle } from "./commands/watch.ts";
import type { SseEvent } from "./sse.ts";

function harness(): { ctx: Context; printed: string[] } {
  const printed: string[] = [];
  const ctx: Context = {
    client: new Client(["http://127.0.0.1:1"], 1000),
    output: "table",
    io: {
      write: (c) => printed.push(typeof c === "string" ? c.trimEnd() : ""),
      warn: () => undefined,
      readStdin: () => Promise.resolve(new Uint8Array(0)),
      stdinIsTty: false,
      stdoutIsTty: false,
      onInterrupt: () => () => undefined,
    },
  };
  return { ctx, printed };
}

const put = (revision: number, key: string, id: boolean): SseEvent => ({
  event: "put",
  id: id ? String(revision) : null,
  data: JSON.stringify({ type: "put", revision, key, value: key, valueBase64: "", createRevision: revision, modRevision: revision, version: 1, lease: 0 }),
});

const spec: WatchSpec = { key: "", prefix: true, prevKv: false, from: 5 };

test("a revision cut off midway is replayed without repeating what was printed", () => {
  const { ctx, printed } = harness();
  const pos: Position = { after: 4, partial: { revision: 0, printed: 0 } };
  // First connection: revision 5 whole, then one of revision 6's three events.
  let cur: Current = { revision: 0, seen: 0 };
  for (const e of [put(5, "a", true), put(6, "b", false)]) expect(handle(ctx, "e1", e, spec, pos, cur).ok).toBe(true);
  expect(pos).toEqual({ after: 5, partial: { revision: 6, printed: 1 } });

  // Second connection, Last-Event-ID 5: the server sends all of revision 6 again.
  cur = { revision: 0, seen: 0 };
  for (const e of [put(6, "b", false), put(6, "c", false), put(6, "d", true), put(7, "e", true)]) handle(ctx, "e2", e, spec, pos, cur);
  expect(printed).toEqual(["5 PUT a a", "6 PUT b b", "6 PUT c c", "6 PUT d d", "7 PUT e e"]);
  expect(pos).toEqual({ after: 7, partial: { revision: 0, printed: 0 } });
});

test("progress moves the resume point; events at or below it are never printed again", () => {
  const { ctx, printed } = harness();
  const pos: Position = { after: 4, partial: { revision: 0, printed: 0 } };
  const cur: Current = { revision: 0, seen: 0 };
  handle(ctx, "e", { event: "progress", id: null, data: '{"revision":9}' }, spec, pos, cur);
  expect(pos.after).toBe(9);
  handle(ctx, "e", put(8, "old", true), spec, pos, cur);
  expect(printed).toEqual([]);
});

test("a compacted start ends the watch with the server's code; a slow consumer resumes", () => {
  const { ctx } = harness();
  const pos: Position = { after: 4, partial: { revision: 0, printed: 0 } };
  const cur: Current = { revision: 0, seen: 0 };
  const compacted = handle(ctx, "e", { event: "error", id: null, data: '{"code":"Compacted","message":"gone","compactRevision":9}' }, spec, pos, cur);
  expect(compacted).toMatchObject({ ok: false, error: { type: "Api", code: "Compacted", message: "gone" } });
  const slow = handle(ctx, "e", { event: "error", id: null, data: '{"code":"SlowConsumer","message":"behind","resumeRevision":12}' }, spec, pos, cur);
  expect(slow).toMatchObject({ ok: true, value: { type: "resume" } });
  expect(pos.after).toBe(11);
});

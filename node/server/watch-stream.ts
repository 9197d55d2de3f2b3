// Watches over Server-Sent Events. A stream carries one watch (GET /v1/watch,
// resumable with Last-Event-ID) or many (POST /v1/watch): etcd's model, where
// one client's watchers share one stream. On a multiplexed stream every event
// names its watch by index and carries its revision, a watch that ends
// (compacted start, slow consumer) ends alone, and a client resumes a watch
// from the revision after the last one it saw.
//
// Whatever the stream's watches have to deliver after one apply goes out in
// one write: the hub calls onReady inside apply, and the stream pumps once, in
// a microtask, after the apply batch. With many watchers on one member that is
// one system call per stream instead of one per watcher.

import type { Response } from "express";
import type { KvEvent, WatchEnd, WatchHub, WatchSelector, Watcher } from "../kv/index.ts";

export interface WatchSpec {
  readonly selector: WatchSelector;
  readonly prevKv: boolean;
  /** The first revision to deliver; absent: the next one. */
  readonly fromRevision: number | undefined;
}

export interface WatchStreamOptions {
  readonly hub: WatchHub;
  /** The store's current revision. */
  readonly revision: () => number;
  /** How often `event: progress` reports how far every watch has been delivered. */
  readonly progressMs: number;
  /**
   * False: one watch, each revision's last event carries the revision as its
   * SSE id, and the stream ends with the watch. True: events carry
   * `watch` (the index of their watch) and no id.
   */
  readonly multiplexed: boolean;
  readonly eventJson: (e: KvEvent, withPrev: boolean) => Record<string, unknown>;
  /** The stream opened, and closed (for the open-watches gauge). */
  readonly opened: () => void;
  readonly closed: () => void;
}

/** A watch that could not start: a start at a compacted revision, or a request the hub refuses. */
export type WatchStartError = { readonly index: number; readonly reason: string };

/** Bytes gathered before the stream writes in the middle of a pump (a long catch-up). */
const flushBytes = 64 * 1024;

interface Slot {
  readonly spec: WatchSpec;
  /** Null once the watch has ended (or never started). */
  w: Watcher | null;
}

/**
 * Starts the watches and streams their events on `res`. Returns an error
 * without writing anything if the hub refuses a watch as invalid (the caller
 * answers 400); a compacted start is an `event: error` on the stream.
 */
export function serveWatchStream(res: Response, specs: readonly WatchSpec[], o: WatchStreamOptions): WatchStartError | null {
  const slots: Slot[] = specs.map((spec) => ({ spec, w: null }));
  const ready = new Set<number>();
  let out: string[] = [];
  let outBytes = 0;
  // Flags in one object: the closures below change them, which narrowing
  // of plain locals would not see.
  const st = { closed: false, waitingDrain: false, scheduled: false };

  const emit = (event: string, id: number | null, data: Record<string, unknown>): void => {
    const text = `event: ${event}\n${id === null ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`;
    out.push(text);
    outBytes += text.length;
  };
  /** Writes what is gathered; false when the socket asks to wait for drain. */
  const flush = (): boolean => {
    if (out.length === 0 || st.closed) return true;
    const chunk = out.length === 1 ? (out[0] ?? "") : out.join("");
    out = [];
    outBytes = 0;
    return res.write(chunk);
  };
  const writable = (): boolean => !st.closed && !st.waitingDrain;
  /** Adds the watch's index on a multiplexed stream (to an object made for this event only). */
  const tagged = (index: number, data: Record<string, unknown>): Record<string, unknown> => {
    if (o.multiplexed) data["watch"] = index;
    return data;
  };

  const close = (): void => {
    if (st.closed) return;
    flush();
    st.closed = true;
    clearInterval(progress);
    for (const s of slots) s.w?.cancel();
    o.closed();
    res.end();
  };

  /** A multiplexed stream ends with its last watch; a single one with its watch. */
  const closeIfDone = (): void => {
    if (!o.multiplexed || slots.every((s) => s.w === null)) close();
  };

  const endWatch = (index: number, slot: Slot, reason: WatchEnd): void => {
    const next = slot.w?.nextRevision ?? 0;
    slot.w?.cancel();
    slot.w = null;
    ready.delete(index);
    if (reason.type === "Compacted") {
      emit("error", null, tagged(index, { code: "Compacted", message: `events from revision ${next} were compacted`, compactRevision: reason.compactRevision }));
    } else if (reason.type === "SlowConsumer") {
      emit("error", null, tagged(index, { code: "SlowConsumer", message: "the watch fell too far behind; resume from resumeRevision", resumeRevision: reason.resumeRevision }));
    }
    closeIfDone();
  };

  /** Polls one watch until it is drained; false if the stream must wait for drain first. */
  const pumpOne = (index: number): boolean => {
    const slot = slots[index];
    for (;;) {
      const w = slot?.w ?? null;
      if (slot === undefined || w === null || st.closed) return true;
      const p = w.poll();
      if (p.type === "ended") {
        endWatch(index, slot, p.reason);
        return true;
      }
      const evs = p.events;
      for (let k = 0; k < evs.length; k++) {
        const e = evs[k];
        if (e === undefined) continue;
        // On a single watch only the last event of a revision carries the id,
        // so that a resume from Last-Event-ID never skips the rest of it.
        const id = !o.multiplexed && evs[k + 1]?.revision !== e.revision ? e.revision : null;
        emit(e.type, id, tagged(index, o.eventJson(e, slot.spec.prevKv)));
      }
      if (!p.more) {
        ready.delete(index);
        return true;
      }
      if (outBytes >= flushBytes && !flush()) return false;
    }
  };

  const pump = (): void => {
    st.scheduled = false;
    if (st.closed || st.waitingDrain) return;
    for (const index of [...ready]) {
      if (!pumpOne(index)) {
        waitDrain();
        return;
      }
    }
    if (!flush()) waitDrain();
  };
  const waitDrain = (): void => {
    st.waitingDrain = true;
    res.once("drain", () => {
      st.waitingDrain = false;
      pump();
    });
  };
  const schedule = (index: number): void => {
    ready.add(index);
    if (st.scheduled) return;
    st.scheduled = true;
    queueMicrotask(pump);
  };

  // Start every watch before writing anything, so that an invalid one is a 400.
  const compactedStarts: { index: number; from: number; compactRevision: number }[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i];
    if (slot === undefined) continue;
    const started = o.hub.watch(slot.spec.selector, {
      ...(slot.spec.fromRevision === undefined ? {} : { fromRevision: slot.spec.fromRevision }),
      onReady: () => {
        schedule(i);
      },
    });
    if (started.ok) {
      slot.w = started.watcher;
      ready.add(i);
    } else if (started.error.type === "Compacted") {
      compactedStarts.push({ index: i, from: slot.spec.fromRevision ?? 0, compactRevision: started.error.compactRevision });
    } else {
      for (const s of slots) s.w?.cancel();
      return { index: i, reason: started.error.reason };
    }
  }

  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    Connection: "keep-alive",
    "X-Accel-Buffering": "no",
    "X-Concord-Revision": String(o.revision()),
  });
  res.flushHeaders();
  o.opened();
  const progress = setInterval(() => {
    if (!writable()) return;
    pump();
    if (!writable()) return;
    // Every watch has delivered everything before its nextRevision.
    let rev = o.revision();
    for (const s of slots) if (s.w !== null) rev = Math.min(rev, s.w.nextRevision - 1);
    emit("progress", o.multiplexed ? null : rev, { revision: rev });
    if (!flush()) waitDrain();
  }, o.progressMs);
  res.on("close", () => {
    close();
  });
  out.push("retry: 1000\n\n");
  // Every watch that could not start gets its error before the stream may end.
  for (const c of compactedStarts) {
    emit("error", null, tagged(c.index, { code: "Compacted", message: `revision ${c.from} is compacted (compact revision ${c.compactRevision})`, compactRevision: c.compactRevision }));
  }
  if (compactedStarts.length > 0) closeIfDone();
  if (st.closed) return null;
  pump();
  return null;
}

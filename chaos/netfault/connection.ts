// One connection through a member's proxy: reads the dialer's first frame
// (the hello) to learn who is calling, then forwards both ways, delays the
// dialer's bytes, discards them (blackhole), or resets the connection, as the
// network decides. Bytes are forwarded exactly as they arrived, the first
// frame included: the proxy parses the hello but never re-encodes anything.
//
// Phases:
//   hello ──first frame──▶ pass ⇄ (delay on/off)
//     │                     │──cut blackhole──▶ blackhole ──heal / refuse──▶ closed
//     │                     └──cut refuse / overflow / either side closes──▶ closed
//     └──cut──▶ blackhole | closed

import { connect } from "node:net";
import type { Socket } from "node:net";
import { isDecodeError } from "../../node/raft/codec.ts";
import type { Rng } from "../../node/raft/rng.ts";
import { FrameReader, describeFramingError } from "../../node/transport/frame-reader.ts";
import type { Hello } from "../../node/transport/wire.ts";
import { MAX_CONTROL_FRAME_BYTES, decodeFrame } from "../../node/transport/wire.ts";
import { DelayQueue } from "./delay-queue.ts";
import type { Item } from "./delay-queue.ts";
import type { DelayRule, LinkPolicy } from "./rules.ts";
import type { LinkCounters } from "./stats.ts";
import { counterNames, emptyCounters } from "./stats.ts";

/** The dialer's first frame: a hello, or something else (garbage, another version, a timeout). */
export type FirstFrame = { readonly type: "hello"; readonly hello: Hello } | { readonly type: "other"; readonly why: string };

export interface ConnectionContext {
  readonly upstream: { readonly host: string; readonly port: number };
  readonly maxDelayedBytes: number;
  /** A connection whose first frame is not complete by then is treated as not a hello. */
  readonly helloTimeoutMs: number;
  /** Milliseconds, monotonic. */
  now(): number;
  /** The first frame is in: the network attributes the connection and calls apply(). */
  identified(conn: ProxyConnection, first: FirstFrame): void;
  /** An independent jitter source for this connection under `rule`. */
  jitter(rule: DelayRule): Rng;
  closed(conn: ProxyConnection): void;
}

export type Phase = "hello" | "pass" | "blackhole" | "closed";

/** What apply() did, for the rule change's log entry. */
export type Outcome = "unchanged" | "opened" | "refused" | "blackholed" | "closed";

export class ProxyConnection {
  /** The link this connection counts towards. */
  private link: LinkCounters;
  /** This connection's own share of the link's counts, so that they can move with it. */
  private readonly own: LinkCounters = emptyCounters();
  private readonly client: Socket;
  private readonly ctx: ConnectionContext;
  private upstream: Socket | null = null;
  private state: Phase = "hello";
  /** Bytes read before the first frame was decided, forwarded verbatim afterwards. */
  private early: Buffer[] = [];
  private earlyEnd = false;
  private readonly reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
  private helloTimer: NodeJS.Timeout | null;
  private delayRule: DelayRule | null = null;
  private rng: Rng | null = null;
  private readonly queue: DelayQueue;
  private releaseTimer: NodeJS.Timeout | null = null;

  constructor(client: Socket, ctx: ConnectionContext, link: LinkCounters) {
    this.client = client;
    this.ctx = ctx;
    this.link = link;
    this.queue = new DelayQueue(ctx.maxDelayedBytes);
    client.setNoDelay(true);
    this.helloTimer = setTimeout(() => {
      this.identify({ type: "other", why: `no complete first frame within ${ctx.helloTimeoutMs} ms` });
    }, ctx.helloTimeoutMs);
    client.on("data", (chunk: Buffer) => {
      this.fromDialer(chunk);
    });
    client.on("end", () => {
      this.dialerEnded();
    });
    client.on("drain", () => this.upstream?.resume());
    client.on("error", () => {
      this.close("destroy");
    });
    client.on("close", () => {
      this.close("destroy");
    });
  }

  get phase(): Phase {
    return this.state;
  }

  /**
   * Counts this connection towards another link from now on, and moves what
   * it counted so far there too: a connection from an id learned later is
   * reported under the right link from its start.
   */
  countTowards(link: LinkCounters): void {
    if (link === this.link) return;
    for (const k of counterNames) {
      this.link[k] -= this.own[k];
      link[k] += this.own[k];
    }
    this.link = link;
  }

  /** Bytes held back by a delay. */
  get delayedBytes(): number {
    return this.queue.bytes;
  }

  /**
   * Brings the connection in line with `policy`. Idempotent: the network calls
   * it for every live connection after each rule change.
   */
  apply(policy: LinkPolicy): Outcome {
    switch (this.state) {
      case "closed":
      case "hello":
        return "unchanged";
      case "blackhole":
        if (policy.type === "cut" && policy.mode === "blackhole") return "unchanged";
        // The dialer's stream lost bytes: it can never be resumed, only redialled.
        if (policy.type === "cut") this.count("closedByCut", 1);
        else this.count("closedByHeal", 1);
        this.close("reset");
        return "closed";
      case "pass":
        if (policy.type === "cut") {
          if (policy.mode === "refuse") {
            this.count("closedByCut", 1);
            this.close("reset");
            return "closed";
          }
          this.startBlackhole();
          return "blackholed";
        }
        this.setDelay(policy.delay);
        return "unchanged";
    }
  }

  /** The first decision, right after identified(). */
  open(policy: LinkPolicy): Outcome {
    if (this.state !== "hello") throw new Error(`netfault: open() in phase ${this.state}`);
    if (policy.type === "cut" && policy.mode === "refuse") {
      this.count("refused", 1);
      this.close("reset");
      return "refused";
    }
    const early = this.early;
    this.early = [];
    if (policy.type === "cut") {
      this.count("blackholed", 1);
      this.state = "blackhole";
      for (const c of early) this.count("bytesDiscarded", c.byteLength);
      if (this.earlyEnd) this.close("destroy");
      return "blackholed";
    }
    this.count("connections", 1);
    this.state = "pass";
    this.dialUpstream();
    this.setDelay(policy.delay);
    for (const c of early) this.forward(c);
    if (this.earlyEnd) this.forward("end");
    return "opened";
  }

  /** Closes both sides; a reset tells the dialer at once that the link is gone. */
  close(how: "reset" | "destroy"): void {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer);
    this.releaseTimer = null;
    this.queue.clear();
    this.early = [];
    if (how === "reset" && !this.client.destroyed) this.client.resetAndDestroy();
    else this.client.destroy();
    this.upstream?.destroy();
    this.ctx.closed(this);
  }

  private count(field: keyof LinkCounters, n: number): void {
    this.own[field] += n;
    this.link[field] += n;
  }

  private fromDialer(chunk: Buffer): void {
    switch (this.state) {
      case "hello":
        this.early.push(chunk);
        this.sniff(chunk);
        return;
      case "pass":
        this.forward(chunk);
        return;
      case "blackhole":
        this.count("bytesDiscarded", chunk.byteLength);
        return;
      case "closed":
        return;
    }
  }

  private sniff(chunk: Buffer): void {
    let first: FirstFrame | null = null;
    const err = this.reader.push(chunk, (payload) => {
      const frame = decodeFrame(payload);
      if (isDecodeError(frame)) first = { type: "other", why: `malformed first frame: ${frame.message}` };
      else if (frame.kind === "hello") first = { type: "hello", hello: frame.hello };
      else if (frame.kind === "unsupportedHello") first = { type: "other", why: `hello of protocol version ${frame.version}` };
      else first = { type: "other", why: `first frame is a ${frame.kind}, not a hello` };
      return false;
    });
    if (err !== null) first = { type: "other", why: `bad first frame: ${describeFramingError(err)}` };
    if (first !== null) this.identify(first);
  }

  private identify(first: FirstFrame): void {
    if (this.state !== "hello") return;
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.ctx.identified(this, first);
  }

  private dialerEnded(): void {
    switch (this.state) {
      case "hello":
        this.earlyEnd = true;
        this.identify({ type: "other", why: "the dialer closed before a complete first frame" });
        return;
      case "pass":
        this.forward("end");
        return;
      case "blackhole":
        // The dialer is gone; nothing it sent will ever arrive.
        this.close("destroy");
        return;
      case "closed":
        return;
    }
  }

  private dialUpstream(): void {
    const { host, port } = this.ctx.upstream;
    const upstream = connect({ host, port, noDelay: true, allowHalfOpen: true });
    this.upstream = upstream;
    let connected = false;
    upstream.on("connect", () => {
      connected = true;
    });
    upstream.on("data", (chunk: Buffer) => {
      if (this.state === "closed") return;
      this.count("bytesReturned", chunk.byteLength);
      if (!this.client.write(chunk)) upstream.pause();
    });
    upstream.on("end", () => {
      if (this.state !== "closed") this.client.end();
    });
    upstream.on("drain", () => this.client.resume());
    upstream.on("error", () => {
      if (connected || this.state === "closed") {
        this.close("destroy");
        return;
      }
      // The member is not listening: a reset is the nearest the dialer can
      // get to the refusal it would have seen without a proxy.
      this.count("upstreamFailures", 1);
      this.close("reset");
    });
    upstream.on("close", () => {
      this.close("destroy");
    });
  }

  private setDelay(rule: DelayRule | null): void {
    if (rule === this.delayRule) return;
    this.delayRule = rule;
    this.rng = rule === null ? null : this.ctx.jitter(rule);
    // Held chunks keep their due times; without a delay they all go now.
    if (rule === null) this.release(Number.POSITIVE_INFINITY);
  }

  /** Sends a chunk (or the end) towards the target, through the delay if there is one. */
  private forward(item: Item): void {
    const rule = this.delayRule;
    const rng = this.rng;
    if (rule === null || rng === null) {
      this.write(item);
      return;
    }
    const due = this.queue.dueTime(this.ctx.now(), rule.delay, rng);
    if (!this.queue.push(item, due)) {
      this.count("closedByOverflow", 1);
      this.close("reset");
      return;
    }
    this.schedule();
  }

  private write(item: Item): void {
    const upstream = this.upstream;
    if (upstream === null || this.state !== "pass") return;
    if (item === "end") {
      upstream.end();
      return;
    }
    this.count("bytesForwarded", item.byteLength);
    // Backpressure: stop reading the dialer until the target catches up, so
    // that neither the socket buffer nor the delay queue grows without bound.
    if (!upstream.write(item)) this.client.pause();
  }

  private schedule(): void {
    if (this.releaseTimer !== null) return;
    const due = this.queue.nextDue;
    if (due === undefined) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = null;
      this.release(this.ctx.now());
    }, Math.max(1, Math.ceil(due - this.ctx.now())));
  }

  private release(now: number): void {
    for (const item of this.queue.takeDue(now)) this.write(item);
    if (this.queue.length === 0 && this.releaseTimer !== null) {
      clearTimeout(this.releaseTimer);
      this.releaseTimer = null;
    }
    this.schedule();
  }

  private startBlackhole(): void {
    this.state = "blackhole";
    this.count("bytesDiscarded", this.queue.bytes);
    this.queue.clear();
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer);
    this.releaseTimer = null;
    this.delayRule = null;
    this.rng = null;
    // Anything paused for backpressure must keep being read, and discarded.
    this.client.resume();
  }
}

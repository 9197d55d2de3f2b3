// node bench/transport.ts: throughput of the peer transport on loopback.
//
// A sender transport streams append messages (default 10 entries of 256
// bytes, Raft's shape under write load) to a receiver transport running in a
// worker thread, as a second machine would. The sender keeps its queue at
// most half full, reading the transport's own backpressure figure, so that
// nothing is dropped; the clock stops when the receiver has every message.
// Reported: messages/s, payload MB/s (entry data) and wire MB/s (frames).

import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { Message } from "../node/raft/index.ts";
import { nodeId } from "../node/raft/index.ts";
import { Transport, transportDefaults } from "../node/transport/index.ts";

const sender = nodeId("a");
const receiver = nodeId("b");
const clusterId = "bench";

interface ReceiverInit {
  readonly senderUrl: string;
}
type ToReceiver = { readonly type: "count" } | { readonly type: "stop" };
type FromReceiver = { readonly type: "listening"; readonly port: number } | { readonly type: "count"; readonly messages: number };

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function isReceiverInit(x: unknown): x is ReceiverInit {
  return typeof x === "object" && x !== null && typeof (x as { senderUrl?: unknown }).senderUrl === "string";
}

async function runReceiver(init: ReceiverInit): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error("receiver must run in a worker");
  let messages = 0;
  const t = new Transport({
    self: receiver,
    clusterId,
    listen: { host: "127.0.0.1", port: 0 },
    peers: [[sender, init.senderUrl]],
    onMessage: () => {
      messages++;
    },
  });
  const { port: listenPort } = await t.start();
  port.postMessage({ type: "listening", port: listenPort } satisfies FromReceiver);
  port.on("message", (m: ToReceiver) => {
    if (m.type === "count") port.postMessage({ type: "count", messages } satisfies FromReceiver);
    else
      void t.stop().then(() => {
        port.close();
      });
  });
}

function appendMessage(index: number, entries: number, data: Uint8Array): Message {
  return {
    type: "app",
    from: sender,
    to: receiver,
    term: 1,
    prevIndex: index,
    prevTerm: 1,
    commit: index,
    entries: Array.from({ length: entries }, (_, k) => ({ kind: "normal" as const, term: 1, index: index + k + 1, data })),
  };
}

class ReceiverHandle {
  private readonly worker: Worker;
  private waiting: ((m: FromReceiver) => void)[] = [];

  constructor(senderUrl: string) {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { senderUrl } satisfies ReceiverInit });
    this.worker.on("message", (m: FromReceiver) => {
      const w = this.waiting.shift();
      if (w !== undefined) w(m);
    });
    this.worker.on("error", (err) => {
      throw err;
    });
  }

  next(): Promise<FromReceiver> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async count(): Promise<number> {
    const reply = this.next();
    this.worker.postMessage({ type: "count" } satisfies ToReceiver);
    const m = await reply;
    if (m.type !== "count") throw new Error(`unexpected ${m.type}`);
    return m.messages;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.worker.once("exit", resolve));
    this.worker.postMessage({ type: "stop" } satisfies ToReceiver);
    await exited;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      entries: { type: "string", default: "10" },
      size: { type: "string", default: "256" },
      seconds: { type: "string", default: "5" },
    },
  });
  const entries = Number(values.entries);
  const size = Number(values.size);
  const seconds = Number(values.seconds);
  const data = new Uint8Array(size).fill(7);

  let dropped = 0;
  const a = new Transport({
    self: sender,
    clusterId,
    listen: { host: "127.0.0.1", port: 0 },
    peers: [],
    onMessage: () => undefined,
    metrics: {
      rtt: () => undefined,
      sentFailure: () => {
        dropped++;
      },
    },
  });
  const { port } = await a.start();
  const b = new ReceiverHandle(`tcp://127.0.0.1:${port}`);
  const listening = await b.next();
  if (listening.type !== "listening") throw new Error("receiver did not start");
  a.addPeer(receiver, `tcp://127.0.0.1:${listening.port}`);
  while (a.peerStatus(receiver)?.accepted !== true) await turn();

  const window = transportDefaults.maxQueueBytes / 2;
  let index = 0;
  let sent = 0;
  /** Sends for `ms`, never letting the queue exceed half its bound. */
  const pump = async (ms: number): Promise<void> => {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      const batch: Message[] = [];
      while ((a.peerStatus(receiver)?.pendingBytes ?? 0) < window && batch.length < 256) {
        batch.push(appendMessage(index, entries, data));
        index += entries;
        // One send() per message, as a Raft Ready loop would for many followers.
        a.send([batch[batch.length - 1] as Message]);
      }
      sent += batch.length;
      await turn();
    }
    while ((await b.count()) < sent) await turn();
  };

  await pump(1000); // warm-up: JIT, socket buffers
  const startMsgs = sent;
  const startStatus = a.peerStatus(receiver);
  const t0 = performance.now();
  await pump(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const endStatus = a.peerStatus(receiver);
  if (startStatus === undefined || endStatus === undefined) throw new Error("no status");
  const msgs = sent - startMsgs;
  const wireBytes = endStatus.bytesWritten - startStatus.bytesWritten;
  const writes = endStatus.writes - startStatus.writes;
  const mb = (n: number): string => (n / elapsed / 1e6).toFixed(1);

  process.stdout.write(`Peer transport on loopback, node ${process.version}: app messages of ${entries} entries × ${size} bytes, receiver in a worker thread\n`);
  process.stdout.write(`messages/s        ${Math.round(msgs / elapsed).toLocaleString("en-US")}\n`);
  process.stdout.write(`payload MB/s      ${mb(msgs * entries * size)}   (entry data)\n`);
  process.stdout.write(`wire MB/s         ${mb(wireBytes)}   (frames, ${Math.round(wireBytes / msgs)} bytes per message)\n`);
  process.stdout.write(`messages / write  ${Math.round(msgs / Math.max(1, writes))}\n`);
  process.stdout.write(`dropped           ${dropped}\n`);
  process.stdout.write(`time              ${elapsed.toFixed(2)} s, ${msgs.toLocaleString("en-US")} messages\n`);

  await b.stop();
  await a.stop();
}

if (isMainThread) {
  await main();
} else {
  if (!isReceiverInit(workerData)) throw new Error("bad worker data");
  await runReceiver(workerData);
}

// Watchers that record the event streams they see over Server-Sent Events,
// reconnecting with Last-Event-ID when a member dies or the stream breaks.

export interface WatchEvent {
  readonly type: "put" | "delete";
  readonly key: string;
  readonly value: string;
  readonly revision: number;
  readonly modRevision: number;
}

export interface WatchStream {
  readonly watcher: string;
  /** The events in the order received, across reconnects. */
  readonly events: WatchEvent[];
  reconnects: number;
  errors: string[];
}

interface EventData {
  type: "put" | "delete";
  key: string;
  value?: string;
  revision: number;
  modRevision: number;
}

/** Reads one SSE stream until it ends or `signal` aborts; calls onEvent for each put or delete. */
export async function readSse(
  url: string,
  lastEventId: number | null,
  signal: AbortSignal,
  onEvent: (e: WatchEvent, id: number | null) => void,
  onError: (code: string) => void,
  onProgress: (id: number | null) => void = () => undefined,
): Promise<void> {
  const headers: Record<string, string> = {};
  if (lastEventId !== null) headers["Last-Event-ID"] = String(lastEventId);
  const res = await fetch(url, { headers, signal });
  if (res.status !== 200 || res.body === null) {
    onError(`HTTP ${res.status}`);
    return;
  }
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let sep: number;
    while ((sep = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, sep);
      buf = buf.slice(sep + 2);
      let event = "message";
      let id: number | null = null;
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("id: ")) id = Number(line.slice(4));
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (event === "put" || event === "delete") {
        const d = JSON.parse(data) as EventData;
        onEvent({ type: d.type, key: d.key, value: d.value ?? "", revision: d.revision, modRevision: d.modRevision }, id);
      } else if (event === "progress") {
        onProgress(id);
      } else if (event === "error") {
        onError((JSON.parse(data) as { code: string }).code);
        return;
      }
    }
  }
}

/** A watcher on a prefix that keeps resuming from the last complete revision it saw. */
export class Watcher {
  readonly stream: WatchStream;
  private readonly urls: () => readonly string[];
  private readonly prefix: string;
  private readonly abort = new AbortController();
  private done: Promise<void> | null = null;
  private lastId: number | null = null;
  /** Events up to the last id (a complete revision); the rest are dropped on a reconnect and sent again. */
  private complete = 0;

  constructor(name: string, prefix: string, urls: () => readonly string[]) {
    this.stream = { watcher: name, events: [], reconnects: 0, errors: [] };
    this.prefix = prefix;
    this.urls = urls;
  }

  start(fromRevision: number): void {
    this.done = this.loop(fromRevision);
  }

  private async loop(fromRevision: number): Promise<void> {
    let attempt = 0;
    while (!this.abort.signal.aborted) {
      const urls = this.urls();
      const base = urls[attempt++ % Math.max(1, urls.length)];
      if (base === undefined) break;
      const from = this.lastId === null ? `&fromRevision=${fromRevision}` : "";
      try {
        await readSse(
          `${base}/v1/watch?key=${encodeURIComponent(this.prefix)}&prefix=true&progressMs=500${from}`,
          this.lastId,
          this.abort.signal,
          (e, id) => {
            this.stream.events.push(e);
            if (id !== null) {
              this.lastId = id;
              this.complete = this.stream.events.length;
            }
          },
          (code) => this.stream.errors.push(code),
          (id) => {
            if (id !== null && this.complete === this.stream.events.length) this.lastId = Math.max(this.lastId ?? 0, id);
          },
        );
      } catch {
        // The member died or the stream broke: resume elsewhere.
      }
      if (this.stopping()) break;
      // A revision cut off mid-way is sent again in full after the resume.
      this.stream.events.length = this.complete;
      this.stream.reconnects++;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A method, so that the loop re-reads the flag after each await. */
  private stopping(): boolean {
    return this.abort.signal.aborted;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

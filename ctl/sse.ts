// An incremental Server-Sent Events parser (the subset /v1/watch uses:
// event, id and data fields; comments and retry are skipped). Pure: text in,
// events out, whatever the chunk boundaries.

export interface SseEvent {
  readonly event: string;
  /** The `id:` field, or null when the event has none. */
  readonly id: string | null;
  readonly data: string;
}

export class SseParser {
  /** Complete lines and the start of the next, with every line break as \n. */
  private buffer = "";
  /** A \r at the end of a chunk: a line break, or the first half of \r\n. */
  private pendingCr = false;

  /** Feeds a chunk of the stream; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    let text = (this.pendingCr ? "\r" : "") + chunk;
    this.pendingCr = text.endsWith("\r");
    if (this.pendingCr) text = text.slice(0, -1);
    this.buffer += text.replace(/\r\n?/g, "\n");
    const out: SseEvent[] = [];
    for (let cut = this.buffer.indexOf("\n\n"); cut >= 0; cut = this.buffer.indexOf("\n\n")) {
      const block = this.buffer.slice(0, cut);
      this.buffer = this.buffer.slice(cut + 2);
      const e = parseBlock(block);
      if (e !== null) out.push(e);
    }
    return out;
  }
}

function parseBlock(block: string): SseEvent | null {
  let event = "message";
  let id: string | null = null;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  // A block without data (`retry: 1000`) dispatches nothing.
  return data.length === 0 ? null : { event, id, data: data.join("\n") };
}

// Copies every key (under --prefix) from one Concord cluster to another over
// the HTTP API, byte for byte, reading the source at one revision. Used to load
// a backup into a new cluster: open the backup with a local
// `concord-node --restore-snapshot`, then copy from it (docs/operations.md).
// Values are copied; revisions, versions and leases are not (the destination
// numbers its own revisions; leased keys arrive without their lease).
//
//   node scripts/copy-keys.ts --from http://127.0.0.1:28379 --to http://127.0.0.1:18379 [--prefix app/]

import { parseArgs } from "node:util";

interface Page {
  revision: number;
  kvs: { key: string; valueBase64: string }[];
  more: boolean;
  continue?: string;
}

export interface CopyResult {
  readonly keys: number;
  readonly bytes: number;
  readonly revision: number;
}

async function request(url: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
      // No leader for a moment: retry, like any client.
      if (r.status !== 503 || attempt >= 20) return r;
    } catch (e) {
      if (attempt >= 20) throw e;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
}

export async function copyKeys(from: string, to: string, prefix = ""): Promise<CopyResult> {
  let token: string | undefined;
  let keys = 0;
  let bytes = 0;
  let revision: number;
  do {
    const q = new URLSearchParams({ prefix, limit: "1000", ...(token !== undefined ? { continue: token } : {}) });
    const r = await request(`${from}/v1/kv?${q.toString()}`);
    if (!r.ok) throw new Error(`listing ${from}: ${r.status} ${await r.text()}`);
    const page = (await r.json()) as Page;
    revision = page.revision;
    for (const kv of page.kvs) {
      const value = Buffer.from(kv.valueBase64, "base64");
      const w = await request(`${to}/v1/kv/${encodeURIComponent(kv.key)}`, { method: "PUT", body: value });
      if (w.status !== 200 && w.status !== 201) throw new Error(`writing ${kv.key} to ${to}: ${w.status} ${await w.text()}`);
      keys++;
      bytes += value.byteLength;
    }
    token = page.more ? page.continue : undefined;
  } while (token !== undefined);
  return { keys, bytes, revision };
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({ options: { from: { type: "string" }, to: { type: "string" }, prefix: { type: "string", default: "" } } });
  if (values.from === undefined || values.to === undefined) {
    process.stderr.write("usage: node scripts/copy-keys.ts --from URL --to URL [--prefix P]\n");
    process.exit(2);
  }
  try {
    const r = await copyKeys(values.from.replace(/\/$/, ""), values.to.replace(/\/$/, ""), values.prefix);
    console.log(`copied ${r.keys} keys (${r.bytes} bytes) as of revision ${r.revision} of ${values.from}`);
  } catch (e) {
    process.stderr.write(`copy-keys: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}

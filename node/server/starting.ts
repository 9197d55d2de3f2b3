// While a member with an empty data directory finds its cluster (which can take
// as long as an operator needs to add it), its client port answers with where it
// stands: alive for liveness probes, not ready, and the discovery phase on
// /v1/cluster/status, so that an operator can tell "waiting to be added" from
// "data lost, waiting to be replaced".

import { createServer } from "node:http";
import { urlHost } from "../transport/index.ts";
import type { Config } from "./config.ts";
import type { DiscoveryPhase } from "./discovery.ts";

export interface StartingResponder {
  setPhase(p: DiscoveryPhase): void;
  close(): Promise<void>;
}

export async function startingResponder(config: Config): Promise<StartingResponder | null> {
  const url = config.listenClientUrls[0];
  if (url === undefined) return null;
  let phase: DiscoveryPhase = { phase: "bootstrapping", message: "starting" };
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, body: object): void => {
      res.writeHead(status, { "content-type": "application/json", "retry-after": "1" });
      res.end(JSON.stringify(body));
    };
    switch (path) {
      case "/healthz":
        send(200, { status: "starting", ...phase });
        return;
      case "/v1/cluster/status":
        send(503, { code: "Starting", name: config.name, ...phase });
        return;
      default:
        send(503, { code: "Starting", message: `${config.name} is not part of a running cluster yet: ${phase.message}` });
    }
  });
  const ok = await new Promise<boolean>((resolve) => {
    server.once("error", () => {
      resolve(false);
    });
    server.listen(Number(url.port), urlHost(url), () => {
      resolve(true);
    });
  });
  // If the port is taken the real server will say so; discovery goes on regardless.
  if (!ok) return null;
  return {
    setPhase(p) {
      phase = p;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

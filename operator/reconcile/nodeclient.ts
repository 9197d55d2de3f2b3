// The operator's side of the node's admin API: a member's status, and the
// membership changes and leadership transfers the reconciler makes. Every call
// has a timeout and returns a value; nothing here throws on a network error.

import type { MemberRole } from "../api/types.ts";
import type { MemberView, NodeView } from "./plan.ts";

export type AdminResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

export interface NodeClientOptions {
  readonly timeoutMs?: number;
}

interface RawMember {
  id?: unknown;
  name?: unknown;
  role?: unknown;
  voter?: unknown;
  healthy?: unknown;
  lag?: unknown;
}

const isRole = (r: unknown): r is MemberRole => r === "leader" || r === "follower" || r === "learner";
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function memberView(m: RawMember, leading: boolean): MemberView | null {
  if (typeof m.id !== "string" || typeof m.name !== "string" || !isRole(m.role)) return null;
  return {
    id: m.id,
    name: m.name,
    role: m.role,
    voter: m.voter === true,
    // Only the leader can tell who is healthy and how far behind.
    healthy: leading && m.healthy === true,
    lag: leading && typeof m.lag === "number" ? m.lag : null,
  };
}

/** Parses a /v1/cluster/status reply (200: a member; 503 Starting: still finding its cluster). */
export function parseStatus(status: number, body: unknown): NodeView {
  if (typeof body !== "object" || body === null) return { type: "Unreachable", message: `status ${status} without a JSON body` };
  const b = body as Record<string, unknown>;
  if (status === 503 && b["code"] === "Starting") {
    const phase = b["phase"];
    if (phase === "bootstrapping" || phase === "joining" || phase === "dataLost") {
      return { type: "Starting", phase, memberId: typeof b["memberId"] === "string" ? b["memberId"] : null, message: typeof b["message"] === "string" ? b["message"] : "" };
    }
  }
  if (status !== 200 || typeof b["id"] !== "string" || typeof b["role"] !== "string") {
    const err = b["error"];
    const message = typeof err === "object" && err !== null && typeof (err as Record<string, unknown>)["message"] === "string" ? String((err as Record<string, unknown>)["message"]) : `status ${status}`;
    return { type: "Unreachable", message };
  }
  const leading = b["role"] === "leader";
  const leader = b["leader"];
  const rawMembers = Array.isArray(b["members"]) ? (b["members"] as RawMember[]) : [];
  return {
    type: "Member",
    id: b["id"],
    role: b["role"],
    leaderId: typeof leader === "object" && leader !== null && typeof (leader as Record<string, unknown>)["id"] === "string" ? String((leader as Record<string, unknown>)["id"]) : null,
    term: num(b["term"]),
    appliedIndex: num(b["appliedIndex"]),
    commitIndex: num(b["commitIndex"]),
    revision: num(b["revision"]),
    members: rawMembers.map((m) => memberView(m, leading)).filter((m): m is MemberView => m !== null),
  };
}

export class NodeClient {
  private readonly timeoutMs: number;

  constructor(o: NodeClientOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 3000;
  }

  private async call(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown } | { status: 0; error: string }> {
    try {
      const r = await fetch(url, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
      const text = await r.text();
      let body: unknown = null;
      try {
        body = text === "" ? null : JSON.parse(text);
      } catch {
        body = { error: { code: "NotJson", message: text.slice(0, 200) } };
      }
      return { status: r.status, body };
    } catch (e) {
      return { status: 0, error: e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e) };
    }
  }

  private result<T>(r: { status: number; body: unknown } | { status: 0; error: string }, ok: (body: unknown) => T): AdminResult<T> {
    if ("error" in r) return { ok: false, status: 0, code: "Unreachable", message: r.error };
    if (r.status >= 200 && r.status < 300) return { ok: true, value: ok(r.body) };
    const err = typeof r.body === "object" && r.body !== null ? (r.body as Record<string, unknown>)["error"] : null;
    const e = typeof err === "object" && err !== null ? (err as Record<string, unknown>) : {};
    return { ok: false, status: r.status, code: typeof e["code"] === "string" ? e["code"] : "Error", message: typeof e["message"] === "string" ? e["message"] : `status ${r.status}` };
  }

  async status(baseUrl: string): Promise<NodeView> {
    const r = await this.call(`${baseUrl}/v1/cluster/status`);
    if ("error" in r) return { type: "Unreachable", message: r.error };
    return parseStatus(r.status, r.body);
  }

  async addLearner(baseUrl: string, name: string, peerUrl: string): Promise<AdminResult<{ id: string }>> {
    const r = await this.call(`${baseUrl}/v1/cluster/members`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, peerUrls: [peerUrl] }),
    });
    return this.result(r, (b) => {
      const id = typeof b === "object" && b !== null ? (b as Record<string, unknown>)["id"] : undefined;
      return { id: typeof id === "string" ? id : "" };
    });
  }

  async promote(baseUrl: string, id: string): Promise<AdminResult<null>> {
    return this.result(await this.call(`${baseUrl}/v1/cluster/members/${encodeURIComponent(id)}/promote`, { method: "POST" }), () => null);
  }

  async remove(baseUrl: string, id: string): Promise<AdminResult<null>> {
    return this.result(await this.call(`${baseUrl}/v1/cluster/members/${encodeURIComponent(id)}`, { method: "DELETE" }), () => null);
  }

  async transferLeader(baseUrl: string, toId: string): Promise<AdminResult<null>> {
    return this.result(
      await this.call(`${baseUrl}/v1/cluster/leader/transfer`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ to: toId }) }),
      () => null,
    );
  }
}

// member list | add | promote | remove: /v1/cluster/members. Any member
// takes these; a follower passes them on to the leader.

import { memberAddSchema, memberPromoteSchema, memberRemoveSchema, membersSchema } from "../api.ts";
import type { Member } from "../api.ts";
import type { Command, Context } from "../command.ts";
import type { Result } from "../errors.ts";
import { fail, ok, usage } from "../errors.ts";
import { dash, json, table } from "../output.ts";

const memberIdPattern = /^[0-9a-f]{16}$/;

async function members(ctx: Context): Promise<Result<Member[]>> {
  const r = await ctx.client.json({ method: "GET", path: "/v1/cluster/members", idempotent: true }, membersSchema);
  return r.ok ? ok(r.value.value.members) : r;
}

/** A member ID as given, or the ID of the member with that name. */
export async function resolveMember(ctx: Context, idOrName: string): Promise<Result<{ id: string; name: string | null }>> {
  if (memberIdPattern.test(idOrName)) return ok({ id: idOrName, name: null });
  const ms = await members(ctx);
  if (!ms.ok) return ms;
  const m = ms.value.find((x) => x.name === idOrName);
  if (m === undefined) {
    return fail({ type: "Local", code: "MemberNotFound", message: `no member is named ${idOrName} (members: ${ms.value.map((x) => x.name).join(", ")})` });
  }
  return ok({ id: m.id, name: m.name });
}

export const memberList: Command = {
  words: ["member", "list"],
  args: "",
  arity: { min: 0, max: 0 },
  summary: "list the members: ID, name, role, URLs (and lag, when the leader answers)",
  options: {},
  run: async (ctx) => {
    const r = await ctx.client.json({ method: "GET", path: "/v1/cluster/members", idempotent: true }, membersSchema);
    if (!r.ok) return r;
    const ms = r.value.value.members;
    if (ctx.output === "json") {
      ctx.io.write(json(r.value.value));
      return ok(0);
    }
    const fromLeader = ms.some((m) => m.lag !== undefined);
    const headers = ["id", "name", "role", "peer urls", "client urls", ...(fromLeader ? ["lag"] : [])];
    ctx.io.write(table(headers, ms.map((m) => [m.id, m.name, m.role, m.peerUrls.join(","), dash(m.clientUrls.join(",")), ...(fromLeader ? [dash(m.lag)] : [])])));
    return ok(0);
  },
};

export const memberAdd: Command = {
  words: ["member", "add"],
  args: "NAME",
  arity: { min: 1, max: 1 },
  summary: "add a member as a learner (then start it, and promote it once it has caught up)",
  help: `Prints the new member's ID. Start its process with --initial-cluster-state
existing and an --initial-cluster naming running members; when its lag is
small (concordctl member list), make it a voter with concordctl member promote.`,
  options: { "peer-urls": { type: "string", value: "URLS", help: "the new member's peer URLs, comma-separated (required)" } },
  run: async (ctx, a) => {
    const name = a.arg(0);
    const urls = (a.string("peer-urls") ?? "").split(",").map((u) => u.trim()).filter((u) => u !== "");
    if (urls.length === 0) return usage("member add", "member add needs --peer-urls URL[,URL]");
    const r = await ctx.client.json(
      { method: "POST", path: "/v1/cluster/members", body: JSON.stringify({ name, peerUrls: urls }), headers: { "Content-Type": "application/json" }, idempotent: false },
      memberAddSchema,
    );
    if (!r.ok) return r;
    const m = r.value.value;
    ctx.io.write(
      ctx.output === "json"
        ? json(m)
        : `member ${m.name} added as a learner with ID ${m.id}\n` +
            `start it with --initial-cluster-state existing, then: concordctl member promote ${m.id}\n`,
    );
    return ok(0);
  },
};

export const memberPromote: Command = {
  words: ["member", "promote"],
  args: "ID|NAME",
  arity: { min: 1, max: 1 },
  summary: "make a caught-up learner a voter",
  help: "Refused with LearnerNotReady while the learner is more than 100 entries behind the leader.",
  options: {},
  run: async (ctx, a) => {
    const m = await resolveMember(ctx, a.arg(0));
    if (!m.ok) return m;
    const r = await ctx.client.json({ method: "POST", path: `/v1/cluster/members/${m.value.id}/promote`, idempotent: false }, memberPromoteSchema);
    if (!r.ok) return r;
    ctx.io.write(ctx.output === "json" ? json(r.value.value) : `member ${label(m.value)} promoted to voter\n`);
    return ok(0);
  },
};

export const memberRemove: Command = {
  words: ["member", "remove"],
  args: "ID|NAME",
  arity: { min: 1, max: 1 },
  summary: "remove a member from the cluster (then stop its process)",
  help: `The leader may remove itself; it steps down first. A removed member is not
always told, so stop its process once this returns.`,
  options: {},
  run: async (ctx, a) => {
    const m = await resolveMember(ctx, a.arg(0));
    if (!m.ok) return m;
    const r = await ctx.client.json({ method: "DELETE", path: `/v1/cluster/members/${m.value.id}`, idempotent: false }, memberRemoveSchema);
    if (!r.ok) return r;
    ctx.io.write(ctx.output === "json" ? json(r.value.value) : `member ${label(m.value)} removed\n`);
    return ok(0);
  },
};

const label = (m: { id: string; name: string | null }): string => (m.name === null ? m.id : `${m.name} (${m.id})`);

// leader transfer: POST /v1/cluster/leader/transfer.

import { membersSchema, transferSchema } from "../api.ts";
import type { Command } from "../command.ts";
import { ok } from "../errors.ts";
import { json } from "../output.ts";
import { resolveMember } from "./member.ts";

export const leaderTransfer: Command = {
  words: ["leader", "transfer"],
  args: "",
  arity: { min: 0, max: 0 },
  summary: "move leadership to another voter (default: the most caught-up one)",
  help: "Waits until the new leader has taken over and prints it with the new term.",
  options: { to: { type: "string", value: "ID|NAME", help: "the voter to transfer to" } },
  run: async (ctx, a) => {
    const to = a.string("to");
    let target: string | undefined;
    if (to !== undefined) {
      const m = await resolveMember(ctx, to);
      if (!m.ok) return m;
      target = m.value.id;
    }
    const r = await ctx.client.json(
      {
        method: "POST",
        path: "/v1/cluster/leader/transfer",
        body: JSON.stringify(target === undefined ? {} : { to: target }),
        headers: { "Content-Type": "application/json" },
        idempotent: false,
      },
      transferSchema,
    );
    if (!r.ok) return r;
    const t = r.value.value;
    if (ctx.output === "json") {
      ctx.io.write(json(t));
      return ok(0);
    }
    // The name is for people; the transfer has happened whether or not it can be looked up.
    const ms = await ctx.client.json({ method: "GET", path: "/v1/cluster/members", idempotent: true }, membersSchema);
    const name = ms.ok ? ms.value.value.members.find((m) => m.id === t.leader)?.name : undefined;
    ctx.io.write(`leadership transferred to ${name === undefined ? t.leader : `${name} (${t.leader})`} at term ${t.term}\n`);
    return ok(0);
  },
};

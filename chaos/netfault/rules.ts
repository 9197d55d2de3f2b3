// The fault rules and what they mean for one directed link, as pure
// functions: a rule set in, the policy for a connection out. The proxies
// (network.ts) re-evaluate every live connection against this after each
// change, so the rules are level-triggered: what a connection experiences
// depends only on the rules now, never on the order they were applied in.
//
// A directed link from A to B is every connection that A opens to B's proxy:
// A's message stream and snapshot connections to B. Raft messages from A to B
// travel only on those, and B's control frames (accept, pong, snapAck) come
// back on them; B's Raft messages to A travel on the link from B to A.

/**
 * How a cut treats the connections of a link.
 * - refuse: open connections are reset; new ones are accepted (the hello has
 *   to be read to know who is calling) and reset at once.
 * - blackhole: open connections stay open but the bytes from the dialer are
 *   discarded; new ones are accepted, their bytes discarded and never
 *   forwarded. The dialer learns nothing until its own idle timeout fires.
 */
export type CutMode = "refuse" | "blackhole";

export interface DelaySpec {
  /** Added to every chunk from the dialer, in milliseconds. */
  readonly ms: number;
  /** Each chunk's delay is drawn uniformly from [ms - jitterMs, ms + jitterMs] (at least 0), as netem does; order is kept. */
  readonly jitterMs: number;
}

export type Rule =
  /** No link between members of different groups, either way. Members in no group keep all their links. */
  | { readonly type: "partition"; readonly groups: readonly (readonly string[])[]; readonly mode: CutMode }
  /** No link to or from the member, and no membership query reaches it. */
  | { readonly type: "isolate"; readonly member: string; readonly mode: CutMode }
  /** No link from `from` to `to`; the link from `to` to `from` is untouched. */
  | { readonly type: "cutOneWay"; readonly from: string; readonly to: string; readonly mode: CutMode }
  /** The link from `from` to `to` is slow. A later delay on the same link replaces it. */
  | { readonly type: "delay"; readonly from: string; readonly to: string; readonly delay: DelaySpec };

export type DelayRule = Extract<Rule, { type: "delay" }>;

/**
 * Who opened a connection, as far as its first frame tells.
 * - member: a stream or snapshot hello whose `from` is a known member.
 * - query: a membership query; its hello names no member.
 * - unknown: a hello from an id no member has (yet), or a first frame that
 *   is not a hello at all.
 */
export type Source = { readonly type: "member"; readonly name: string } | { readonly type: "query" } | { readonly type: "unknown" };

/** What the proxy of the target does with a connection. */
export type LinkPolicy = { readonly type: "pass"; readonly delay: DelayRule | null } | { readonly type: "cut"; readonly mode: CutMode };

const passThrough: LinkPolicy = { type: "pass", delay: null };

/** Whether `rule` cuts the link from `from` to `to` (both member names). */
export function cuts(rule: Rule, from: string, to: string): boolean {
  if (from === to) return false;
  switch (rule.type) {
    case "partition": {
      const gf = rule.groups.findIndex((g) => g.includes(from));
      const gt = rule.groups.findIndex((g) => g.includes(to));
      return gf >= 0 && gt >= 0 && gf !== gt;
    }
    case "isolate":
      return rule.member === from || rule.member === to;
    case "cutOneWay":
      return rule.from === from && rule.to === to;
    case "delay":
      return false;
  }
}

/** refuse wins over blackhole: it is what a connection closed by one rule and reopened under another would see anyway. */
function strongest(modes: readonly CutMode[]): CutMode | null {
  if (modes.length === 0) return null;
  return modes.includes("refuse") ? "refuse" : "blackhole";
}

/**
 * The policy for a connection from `source` to member `to`.
 *
 * A connection whose source is unknown fails closed: it is cut whenever any
 * member's link into `to` is cut, since it might come from that member.
 * Membership queries name no source, so only isolating `to` cuts them.
 */
export function linkPolicy(rules: readonly Rule[], members: readonly string[], source: Source, to: string): LinkPolicy {
  switch (source.type) {
    case "query": {
      const mode = strongest(rules.flatMap((r) => (r.type === "isolate" && r.member === to ? [r.mode] : [])));
      return mode === null ? passThrough : { type: "cut", mode };
    }
    case "unknown": {
      const mode = strongest(rules.flatMap((r) => (r.type !== "delay" && members.some((m) => cuts(r, m, to)) ? [r.mode] : [])));
      return mode === null ? passThrough : { type: "cut", mode };
    }
    case "member": {
      const from = source.name;
      const mode = strongest(rules.flatMap((r) => (r.type !== "delay" && cuts(r, from, to) ? [r.mode] : [])));
      if (mode !== null) return { type: "cut", mode };
      let delay: DelayRule | null = null;
      for (const r of rules) if (r.type === "delay" && r.from === from && r.to === to) delay = r;
      return delay === null ? passThrough : { type: "pass", delay };
    }
  }
}

/** Throws (a bug in the calling test) unless the rule names known members sensibly. */
export function validateRule(rule: Rule, members: readonly string[]): void {
  const known = (name: string): void => {
    if (!members.includes(name)) throw new Error(`netfault: unknown member ${JSON.stringify(name)} (members: ${members.join(", ")})`);
  };
  switch (rule.type) {
    case "partition": {
      const seen = new Set<string>();
      for (const g of rule.groups) {
        if (g.length === 0) throw new Error("netfault: a partition group is empty");
        for (const m of g) {
          known(m);
          if (seen.has(m)) throw new Error(`netfault: member ${m} is in more than one partition group`);
          seen.add(m);
        }
      }
      if (rule.groups.length < 2) throw new Error("netfault: a partition needs at least two groups");
      return;
    }
    case "isolate":
      known(rule.member);
      return;
    case "cutOneWay":
    case "delay":
      known(rule.from);
      known(rule.to);
      if (rule.from === rule.to) throw new Error(`netfault: a link from ${rule.from} to itself`);
      if (rule.type === "delay") {
        const { ms, jitterMs } = rule.delay;
        if (!(Number.isFinite(ms) && ms >= 0) || !(Number.isFinite(jitterMs) && jitterMs >= 0)) {
          throw new Error(`netfault: delay needs finite ms >= 0 and jitterMs >= 0, got ${ms} and ${jitterMs}`);
        }
      }
      return;
  }
}

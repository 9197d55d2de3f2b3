// A fault layer for the peer traffic of real members: see network.ts.
export type { CutOptions, DelayOptions, FaultNetworkOptions, FaultReport, MemberInfo, MemberPorts, OpenConnection, StartError, StartResult } from "./network.ts";
export { FaultNetwork } from "./network.ts";
export type { Phase } from "./connection.ts";
export type { CutMode, DelayRule, DelaySpec, LinkPolicy, Rule, Source } from "./rules.ts";
export { cuts, linkPolicy } from "./rules.ts";
export type { FaultChange, FaultEvent, LinkStats } from "./stats.ts";
export { QUERY_SOURCE, UNATTRIBUTED } from "./stats.ts";

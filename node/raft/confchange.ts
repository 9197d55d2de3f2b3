// Single-server membership changes (Raft thesis §4.1). A change takes effect
// on each server as soon as its entry is in that server's log, committed or
// not, and only one change may be uncommitted at a time, so that any two
// successive configurations have overlapping majorities.

import type { ConfChange, ConfState, NodeId } from "./types.ts";

/** Why a change cannot apply to a configuration, or null if it can. */
export function validateConfChange(conf: ConfState, cc: ConfChange): string | null {
  const isVoter = conf.voters.includes(cc.node);
  const isLearner = conf.learners.includes(cc.node);
  switch (cc.type) {
    case "addLearner":
      if (isVoter) return `${cc.node} is already a voter`;
      if (isLearner) return `${cc.node} is already a learner`;
      return null;
    case "promote":
      if (isVoter) return `${cc.node} is already a voter`;
      if (!isLearner) return `${cc.node} is not a learner`;
      return null;
    case "remove":
      if (!isVoter && !isLearner) return `${cc.node} is not a member`;
      if (isVoter && conf.voters.length === 1) return `cannot remove the last voter ${cc.node}`;
      return null;
  }
}

/** The configuration after a change. An invalid change leaves it as it was. */
export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  if (validateConfChange(conf, cc) !== null) return conf;
  const without = (ids: readonly NodeId[]): NodeId[] => ids.filter((id) => id !== cc.node);
  switch (cc.type) {
    case "addLearner":
      return { voters: conf.voters, learners: [...conf.learners, cc.node] };
    case "promote":
      return { voters: [...conf.voters, cc.node], learners: without(conf.learners) };
    case "remove":
      return { voters: without(conf.voters), learners: without(conf.learners) };
  }
}

export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

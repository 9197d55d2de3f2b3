// Majority arithmetic over a set of voters (§5.2, §5.3).

import type { LogIndex, NodeId } from "./types.ts";

export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The highest index that a majority of voters have matched: the commit
 * candidate. Voters with no recorded match count as 0.
 */
export function committedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => LogIndex): LogIndex {
  const n = voters.length;
  if (n === 0) return 0;
  const matches = new Array<number>(n);
  for (let k = 0; k < n; k++) {
    const v = voters[k];
    matches[k] = v === undefined ? 0 : matchOf(v);
  }
  matches.sort((a, b) => b - a);
  return matches[quorumSize(n) - 1] ?? 0;
}

export type VoteOutcome = "won" | "lost" | "pending";

/** Tallies granted and rejected votes among voters; votes from non-voters do not count. */
export function voteOutcome(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const g = votes.get(v);
    if (g === true) granted++;
    else if (g === false) rejected++;
  }
  const q = quorumSize(voters.length);
  if (granted >= q) return "won";
  if (voters.length - rejected < q) return "lost";
  return "pending";
}

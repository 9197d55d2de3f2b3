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
  // Called on every append response: an insertion sort (descending) into a
  // reused buffer, with no allocation for the usual 1 to 9 voters.
  const matches = n <= scratch.length ? scratch : new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const v = voters[k];
    const m = v === undefined ? 0 : matchOf(v);
    let j = k;
    while (j > 0 && (matches[j - 1] ?? 0) < m) {
      matches[j] = matches[j - 1] ?? 0;
      j--;
    }
    matches[j] = m;
  }
  return matches[quorumSize(n) - 1] ?? 0;
}

const scratch = new Float64Array(16);

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

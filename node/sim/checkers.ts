// Safety checkers: separate observers that read what the simulated nodes do
// and never steer them. Each reports a violation with the simulated time.

import type { Entry, LogIndex, NodeId, Term } from "../raft/index.ts";

export type CheckerName =
  | "ElectionSafety"
  | "LogMatching"
  | "LeaderCompleteness"
  | "StateMachineSafety"
  | "MonotonicCommit"
  | "MonotonicApply"
  | "LinearizableRead";

export interface Violation {
  readonly checker: CheckerName;
  readonly at: number;
  readonly message: string;
}

const decoder = new TextDecoder();

/** A stable identity for an entry's content, independent of object identity. */
export function entryKey(e: Entry): string {
  if (e.kind === "conf") return `conf:${e.change.type}:${e.change.node}`;
  return e.data.byteLength === 0 ? "noop" : decoder.decode(e.data);
}

/** Read access to one node's log, for the checkers. */
export interface LogView {
  entryAt(i: LogIndex): Entry | undefined;
  termAt(i: LogIndex): Term | undefined;
  firstIndex(): LogIndex;
  lastIndex(): LogIndex;
}

export class SafetyCheckers {
  readonly violations: Violation[] = [];
  /** Stop recording after this many; the first one is what matters. */
  private readonly limit = 20;

  private leaders = new Map<Term, NodeId>();
  /** (index, term) -> the previous entry's term and this entry's content. */
  private logEntries = new Map<string, { prevTerm: Term; key: string }>();
  /** Index -> content applied by any node. */
  private applied: (string | undefined)[] = [];
  private appliedTerms: (Term | undefined)[] = [];
  private maxApplied: LogIndex = 0;
  private progress = new Map<string, { commit: LogIndex; applied: LogIndex }>();

  private report(checker: CheckerName, at: number, message: string): void {
    if (this.violations.length < this.limit) this.violations.push({ checker, at, message });
  }

  /** Election Safety (§5.2): at most one leader per term. */
  onLeader(at: number, id: NodeId, term: Term, log: LogView): void {
    const prev = this.leaders.get(term);
    if (prev !== undefined && prev !== id) {
      this.report("ElectionSafety", at, `two leaders in term ${term}: ${prev} and ${id}`);
    } else {
      this.leaders.set(term, id);
    }
    this.checkLeaderCompleteness(at, id, term, log);
  }

  /**
   * Leader Completeness (§5.4): a new leader's log holds every entry known
   * to be committed. By Log Matching it is enough to check the newest one.
   */
  private checkLeaderCompleteness(at: number, id: NodeId, term: Term, log: LogView): void {
    const i = this.maxApplied;
    if (i === 0 || i < log.firstIndex() - 1) return; // compacted into the leader's snapshot
    const want = this.applied[i];
    const e = log.entryAt(i);
    const t = log.termAt(i);
    if (e === undefined) {
      if (t !== undefined && t === this.appliedTerms[i]) return; // the snapshot boundary itself
      this.report("LeaderCompleteness", at, `leader ${id} of term ${term} lacks committed entry ${i} (${want ?? "?"})`);
      return;
    }
    if (entryKey(e) !== want || e.term !== this.appliedTerms[i]) {
      this.report(
        "LeaderCompleteness",
        at,
        `leader ${id} of term ${term} has ${entryKey(e)}@t${e.term} at ${i}, committed was ${want ?? "?"}@t${this.appliedTerms[i] ?? "?"}`,
      );
    }
  }

  /**
   * Leader Completeness, forward form: when a leader advances its commit
   * index to (c, w), every log that holds an entry of a term above w must
   * already hold (c, w). In correct Raft this holds because such an entry
   * was made by a later leader whose voters stored (c, w) first (§5.4.3);
   * a log that breaks it could win an election and erase a committed entry.
   */
  onLeaderCommit(at: number, id: NodeId, c: LogIndex, logs: ReadonlyMap<NodeId, LogView>): void {
    const w = logs.get(id)?.termAt(c);
    if (w === undefined) return;
    for (const [other, log] of logs) {
      const last = log.lastIndex();
      const lastTerm = log.termAt(last);
      if (lastTerm === undefined || lastTerm <= w) continue;
      if (c < log.firstIndex() - 1) continue; // compacted: already committed there
      const t = log.termAt(c);
      if (t !== w) {
        this.report(
          "LeaderCompleteness",
          at,
          `leader ${id} committed ${c}@t${w}, but ${other} holds an entry of term ${lastTerm} and ${t === undefined ? "no entry" : `t${t}`} at ${c}: it could be elected and overwrite it`,
        );
      }
    }
  }

  /**
   * Log Matching (§5.3): if two logs have an entry with the same index and
   * term, the logs are identical up to it. Checked inductively: every
   * (index, term) must always carry the same content and follow the same
   * previous term.
   */
  onPersisted(at: number, id: NodeId, entries: readonly Entry[], prevTermOfFirst: Term | undefined): void {
    let prevTerm = prevTermOfFirst;
    for (const e of entries) {
      const k = `${e.index}/${e.term}`;
      const key = entryKey(e);
      const seen = this.logEntries.get(k);
      if (seen === undefined) {
        if (prevTerm !== undefined) this.logEntries.set(k, { prevTerm, key });
      } else if (seen.key !== key) {
        this.report("LogMatching", at, `${id} has ${key} at ${k}, another node has ${seen.key}`);
      } else if (prevTerm !== undefined && seen.prevTerm !== prevTerm) {
        this.report("LogMatching", at, `${id} has entry ${k} after term ${prevTerm}, another node after term ${seen.prevTerm}`);
      }
      prevTerm = e.term;
    }
  }

  /** State Machine Safety (§5.4.3): no two nodes apply different entries at an index. */
  onApplied(at: number, id: NodeId, e: Entry): void {
    const key = entryKey(e);
    const prev = this.applied[e.index];
    if (prev === undefined) {
      this.applied[e.index] = key;
      this.appliedTerms[e.index] = e.term;
      if (e.index > this.maxApplied) this.maxApplied = e.index;
    } else if (prev !== key || this.appliedTerms[e.index] !== e.term) {
      this.report(
        "StateMachineSafety",
        at,
        `${id} applied ${key}@t${e.term} at ${e.index}, another node applied ${prev}@t${this.appliedTerms[e.index] ?? "?"}`,
      );
    }
  }

  /** Commit and applied indices never go backwards within one run of a node. */
  onIndices(at: number, id: NodeId, incarnation: number, commit: LogIndex, applied: LogIndex): void {
    const k = `${id}#${incarnation}`;
    const p = this.progress.get(k);
    if (p !== undefined) {
      if (commit < p.commit) this.report("MonotonicCommit", at, `${id} commit went back from ${p.commit} to ${commit}`);
      if (applied < p.applied) this.report("MonotonicApply", at, `${id} applied went back from ${p.applied} to ${applied}`);
    }
    if (applied > commit) this.report("MonotonicApply", at, `${id} applied ${applied} beyond commit ${commit}`);
    this.progress.set(k, { commit: Math.max(commit, p?.commit ?? 0), applied: Math.max(applied, p?.applied ?? 0) });
  }

  /**
   * Linearizable reads (thesis §6.4): a read returns a state that includes
   * every write acknowledged before the read began.
   */
  onReadServed(at: number, id: NodeId, readId: number, servedIndex: LogIndex, ackedBeforeStart: LogIndex): void {
    if (servedIndex < ackedBeforeStart) {
      this.report(
        "LinearizableRead",
        at,
        `read r${readId} on ${id} saw state at index ${servedIndex}, but a write at ${ackedBeforeStart} was acknowledged before it began`,
      );
    }
  }
}

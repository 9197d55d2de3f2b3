// Structural validation of commands: everything that can be decided without
// looking at the store. The HTTP layer calls validateCommand before
// proposing, so a bad request never costs a log entry; the store calls it
// again when applying, so a command that reached the log anyway (an older
// proposer, a hand-built entry) is rejected identically on every node.

import { validateKey, validatePrefix } from "./key.ts";
import type { CommandError, Compare, KvCommand, TxnOp } from "./types.ts";

/** Most compares, and most operations per branch, in one transaction (etcd's default). */
export const maxTxnOps = 128;
/** Most keys one range read returns. */
export const maxRangeLimit = 10_000;
/** Longest lease (etcd's MaxLeaseTTL). */
export const maxLeaseTtlSeconds = 9_000_000_000;

type InvalidCommand = Extract<CommandError, { type: "InvalidCommand" }>;

const targets: ReadonlySet<string> = new Set(["value", "version", "modRevision", "createRevision"]);
const ops: ReadonlySet<string> = new Set(["==", "!=", ">", "<"]);

function invalid(reason: string): InvalidCommand {
  return { type: "InvalidCommand", reason };
}

const isPositive = (n: number): boolean => Number.isSafeInteger(n) && n >= 1;
const isNonNegative = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

function keyProblem(key: string, where: string): InvalidCommand | null {
  const e = validateKey(key);
  return e === null ? null : invalid(`${where}: ${e.message}`);
}

function prefixProblem(prefix: string, where: string): InvalidCommand | null {
  const e = validatePrefix(prefix);
  return e === null ? null : invalid(`${where}: ${e.message}`);
}

/** Why `cmd` can never be applied, or null. */
export function validateCommand(cmd: KvCommand): InvalidCommand | null {
  switch (cmd.type) {
    case "put": {
      const k = keyProblem(cmd.key, "put");
      if (k !== null) return k;
      if (cmd.lease !== undefined && !isPositive(cmd.lease)) return invalid(`put: lease ${cmd.lease} is not a positive integer`);
      if (cmd.ifMatch !== undefined && !isPositive(cmd.ifMatch)) return invalid(`put: ifMatch ${cmd.ifMatch} is not a positive integer`);
      if (cmd.ifMatch !== undefined && cmd.ifNoneMatch === true) return invalid("put: ifMatch and ifNoneMatch are exclusive");
      return null;
    }
    case "delete": {
      const k = keyProblem(cmd.key, "delete");
      if (k !== null) return k;
      if (cmd.ifMatch !== undefined && !isPositive(cmd.ifMatch)) return invalid(`delete: ifMatch ${cmd.ifMatch} is not a positive integer`);
      return null;
    }
    case "deletePrefix":
      return prefixProblem(cmd.prefix, "deletePrefix");
    case "txn":
      return validateTxn(cmd.compare, cmd.success, cmd.failure);
    case "leaseGrant":
      if (!isPositive(cmd.id)) return invalid(`leaseGrant: id ${cmd.id} is not a positive integer`);
      if (!isPositive(cmd.ttlSeconds) || cmd.ttlSeconds > maxLeaseTtlSeconds) {
        return invalid(`leaseGrant: ttlSeconds ${cmd.ttlSeconds} is not in 1..${maxLeaseTtlSeconds}`);
      }
      return null;
    case "leaseRevoke":
      return isPositive(cmd.id) ? null : invalid(`leaseRevoke: id ${cmd.id} is not a positive integer`);
    case "compact":
      return isPositive(cmd.revision) ? null : invalid(`compact: revision ${cmd.revision} is not a positive integer`);
  }
}

function validateTxn(compare: readonly Compare[], success: readonly TxnOp[], failure: readonly TxnOp[]): InvalidCommand | null {
  if (compare.length > maxTxnOps) return invalid(`txn: ${compare.length} compares; the limit is ${maxTxnOps}`);
  for (const [i, c] of compare.entries()) {
    const k = keyProblem(c.key, `txn compare ${i}`);
    if (k !== null) return k;
    if (!targets.has(c.target)) return invalid(`txn compare ${i}: unknown target ${c.target}`);
    if (!ops.has(c.op)) return invalid(`txn compare ${i}: unknown op ${c.op}`);
    if (c.target !== "value" && !isNonNegative(c.value)) {
      return invalid(`txn compare ${i}: ${c.target} needs a non-negative integer, not ${c.value}`);
    }
  }
  return validateBranch(success, "success") ?? validateBranch(failure, "failure");
}

/**
 * Each key is written at most once per branch: two events for one key at one
 * revision would make "the key's value at revision r" ambiguous, for
 * history and for watchers alike (etcd refuses them too). So no key is put
 * or deleted twice, and no put falls under a deletePrefix of the same branch.
 */
function validateBranch(branch: readonly TxnOp[], name: string): InvalidCommand | null {
  if (branch.length > maxTxnOps) return invalid(`txn ${name}: ${branch.length} operations; the limit is ${maxTxnOps}`);
  const written = new Set<string>();
  const putKeys: string[] = [];
  const prefixes: string[] = [];
  // Reads in a txn run on every node as part of apply, so their total is bounded like one range.
  let rangeTotal = 0;
  for (const [i, op] of branch.entries()) {
    const where = `txn ${name} op ${i} (${op.type})`;
    switch (op.type) {
      case "put":
      case "delete": {
        const k = keyProblem(op.key, where);
        if (k !== null) return k;
        if (written.has(op.key)) return invalid(`${where}: key ${JSON.stringify(op.key)} is written twice`);
        written.add(op.key);
        if (op.type === "put") {
          if (op.lease !== undefined && !isPositive(op.lease)) return invalid(`${where}: lease ${op.lease} is not a positive integer`);
          putKeys.push(op.key);
        }
        break;
      }
      case "deletePrefix": {
        const p = prefixProblem(op.prefix, where);
        if (p !== null) return p;
        prefixes.push(op.prefix);
        break;
      }
      case "get": {
        const k = keyProblem(op.key, where);
        if (k !== null) return k;
        break;
      }
      case "range": {
        const p = prefixProblem(op.prefix, where);
        if (p !== null) return p;
        if (!Number.isSafeInteger(op.limit) || op.limit < 1 || op.limit > maxRangeLimit) {
          return invalid(`${where}: limit ${op.limit} is not in 1..${maxRangeLimit}`);
        }
        rangeTotal += op.limit;
        if (rangeTotal > maxRangeLimit) return invalid(`txn ${name}: range limits add up to more than ${maxRangeLimit}`);
        if (op.after !== undefined) {
          const k = keyProblem(op.after, `${where} after`);
          if (k !== null) return k;
        }
        break;
      }
    }
  }
  for (const key of putKeys) {
    for (const prefix of prefixes) {
      if (key.startsWith(prefix)) {
        return invalid(`txn ${name}: put of ${JSON.stringify(key)} overlaps deletePrefix ${JSON.stringify(prefix)}`);
      }
    }
  }
  return null;
}

export type { Completion, History, Operation, Outcome, Time } from "./history.ts";
export { assertWellFormed, isLoose, returnTime } from "./history.ts";
export type { Model, NondeterministicModel, Partition, StepResult } from "./model.ts";
export { determinize } from "./model.ts";
export type {
  Budget,
  Candidate,
  CheckOptions,
  CheckResult,
  Explanation,
  Indexed,
  PartitionResult,
  PartitionUnknown,
  PartitionViolation,
} from "./checker.ts";
export { checkHistory, checkPartition, defaultBudget } from "./checker.ts";
export type { KvInput, KvOutput, KvState, Revision } from "./kv-model.ts";
export { describeKvInput, describeKvOutput, describeKvState, kvModel, kvNondeterministicModel, partitionByKey, unreadValue } from "./kv-model.ts";
export type { SerializableRead, SerializableReadOutput, StaleReadResult, StaleReadViolation } from "./serializable.ts";
export { checkSerializableReads, formatStaleReadViolation } from "./serializable.ts";
export { describeIndexed, formatPartition, formatResult } from "./report.ts";

export * from "./types.ts";
export type { Rng } from "./rng.ts";
export { SeededRng } from "./rng.ts";
export type { Storage, StorageError } from "./storage.ts";
export { MemoryStorage } from "./storage.ts";
export type { PlantedBug, RaftConfig, RaftStatus, Ready, SoftState } from "./raft.ts";
export { defaultRaftConfig, plantedBugs } from "./raft.ts";
export { RawNode } from "./rawnode.ts";

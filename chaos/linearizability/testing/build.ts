// Terse constructors for hand-written histories in tests.

import type { Operation } from "../history.ts";
import type { KvInput, KvOutput, Revision } from "../kv-model.ts";

export type KvOperation = Operation<KvInput, KvOutput>;

export const get = (key: string): KvInput => ({ type: "get", key });
export const put = (key: string, value: string): KvInput => ({ type: "put", key, value });
export const cas = (key: string, value: string, ifMatch: Revision): KvInput => ({ type: "put", key, value, ifMatch });
export const create = (key: string, value: string): KvInput => ({ type: "put", key, value, ifNoneMatch: true });
export const del = (key: string, ifMatch?: Revision): KvInput => (ifMatch === undefined ? { type: "delete", key } : { type: "delete", key, ifMatch });

export const value = (v: string, modRevision: Revision): KvOutput => ({ type: "value", value: v, modRevision });
export const notFound: KvOutput = { type: "notFound" };
export const written = (modRevision: Revision): KvOutput => ({ type: "written", modRevision });
export const deleted = (revision: Revision): KvOutput => ({ type: "deleted", revision });
export const failed = (currentModRevision: Revision): KvOutput => ({ type: "preconditionFailed", currentModRevision });

/** An operation that returned `output` at `at`. */
export function op(client: number, input: KvInput, invoke: number, at: number, output: KvOutput): KvOperation {
  return { client, input, invoke, completion: { type: "returned", at, output } };
}

/** An operation whose outcome is unknown (a timeout). */
export function lost(client: number, input: KvInput, invoke: number): KvOperation {
  return { client, input, invoke, completion: { type: "indeterminate", reason: "timeout" } };
}

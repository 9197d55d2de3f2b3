// The shapes of the replies concordctl reads (README.md, "The HTTP API").
// Loose objects: a field a newer server adds passes through to `-o json`.

import { z } from "zod";

const int = z.number().int();

export const kvSchema = z.looseObject({
  key: z.string(),
  value: z.string().optional(),
  valueBase64: z.string(),
  createRevision: int,
  modRevision: int,
  version: int,
  lease: int,
});
export type Kv = z.infer<typeof kvSchema>;

export const getSchema = kvSchema.extend({ revision: int });

export const rangeSchema = z.looseObject({
  revision: int,
  kvs: z.array(kvSchema),
  more: z.boolean(),
  count: int.optional(),
  continue: z.string().optional(),
});

export const putSchema = z.looseObject({
  revision: int,
  key: z.string(),
  createRevision: int,
  modRevision: int,
  version: int,
  prevModRevision: int.optional(),
});

export const deleteSchema = z.looseObject({ revision: int, deleted: int, prevModRevision: int.optional() });

// Plain objects outside, so that `"put" in r` tells the results apart.
export const txnResultSchema = z.union([
  z.object({ put: kvSchema.extend({ prevModRevision: int.optional() }) }),
  z.object({ delete: z.looseObject({ deleted: int }) }),
  z.object({ deletePrefix: z.looseObject({ deleted: int }) }),
  z.object({ get: kvSchema.nullable() }),
  z.object({ range: z.looseObject({ kvs: z.array(kvSchema), more: z.boolean(), count: int.optional() }) }),
]);
export type TxnResult = z.infer<typeof txnResultSchema>;

export const txnSchema = z.looseObject({ succeeded: z.boolean(), revision: int, results: z.array(txnResultSchema) });

export const watchEventSchema = kvSchema.extend({
  type: z.enum(["put", "delete"]),
  revision: int,
  prevKv: kvSchema.optional(),
});
export type WatchEvent = z.infer<typeof watchEventSchema>;

export const watchProgressSchema = z.looseObject({ revision: int });

export const watchErrorSchema = z.looseObject({
  code: z.string(),
  message: z.string(),
  resumeRevision: int.optional(),
  compactRevision: int.optional(),
});

export const leaseGrantSchema = z.looseObject({ id: int, ttl: int });
export const leaseListSchema = z.looseObject({
  leases: z.array(z.looseObject({ id: int, ttl: int, remaining: z.number().nullable().optional(), keys: int })),
});
export const leaseInfoSchema = z.looseObject({ id: int, ttl: int, remaining: z.number().nullable().optional(), keys: z.array(z.string()) });
export const leaseKeepaliveSchema = z.looseObject({ id: int, ttl: int, remaining: z.number().nullable().optional() });
export const leaseRevokeSchema = z.looseObject({ revision: int, deleted: int });

export const memberSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  voter: z.boolean(),
  peerUrls: z.array(z.string()),
  clientUrls: z.array(z.string()),
  /** Only in the leader's table. */
  matchIndex: int.nullable().optional(),
  lag: int.nullable().optional(),
  healthy: z.boolean().optional(),
});
export type Member = z.infer<typeof memberSchema>;

export const membersSchema = z.looseObject({ members: z.array(memberSchema) });
export const memberAddSchema = z.looseObject({ id: z.string(), name: z.string(), peerUrls: z.array(z.string()), role: z.string() });
export const memberPromoteSchema = z.looseObject({ id: z.string(), role: z.string() });
export const memberRemoveSchema = z.looseObject({ id: z.string(), removed: z.boolean() });
export const transferSchema = z.looseObject({ leader: z.string(), term: int });

export const statusSchema = z.looseObject({
  name: z.string(),
  id: z.string(),
  clusterId: z.string(),
  role: z.string(),
  leader: z.looseObject({ id: z.string(), name: z.string().nullable() }).nullable(),
  term: int,
  commitIndex: int,
  appliedIndex: int,
  lastIndex: int,
  revision: int,
  compactRevision: int,
  keys: int,
  members: z.array(memberSchema),
});
export type Status = z.infer<typeof statusSchema>;

export const readySchema = z.looseObject({
  ready: z.boolean(),
  leader: z.string().nullable(),
  commitIndex: int,
  appliedIndex: int,
  lag: int,
});

/**
 * An error body: `{error:{code,message}}`, or the bare `{code,message}` a
 * member answers with while it is still joining its cluster.
 */
export const errorBodySchema = z.union([
  z.object({ error: z.looseObject({ code: z.string(), message: z.string() }) }),
  z.object({ code: z.string(), message: z.string() }),
]);

// Expected storage failures, as values. A bug (a broken invariant, misuse of
// the API) throws instead.

/** A WAL that cannot be replayed safely: the node must not start from it. */
export interface WalCorrupt {
  readonly type: "WalCorrupt";
  readonly file: string;
  /** Byte offset in `file` of the first record that could not be read. */
  readonly offset: number;
  readonly message: string;
}

/**
 * The WAL is intact but does not hold the entries that follow the snapshot
 * chosen for recovery (e.g. the newest snapshot file was corrupt and the
 * older one is too far behind the retained segments).
 */
export interface WalGap {
  readonly type: "WalGap";
  readonly dir: string;
  readonly snapshotIndex: number;
  readonly message: string;
}

/** A failed system call. After a failed write or fsync the WAL refuses further writes. */
export interface StorageIoError {
  readonly type: "Io";
  readonly op: string;
  readonly path: string;
  readonly code: string;
  readonly message: string;
}

/** A snapshot file that failed validation; loadNewest skips it. */
export interface SnapshotCorrupt {
  readonly type: "SnapshotCorrupt";
  readonly file: string;
  readonly message: string;
}

export function ioError(op: string, path: string, e: unknown): StorageIoError {
  if (!(e instanceof Error)) throw e;
  const code = (e as NodeJS.ErrnoException).code ?? "EUNKNOWN";
  return { type: "Io", op, path, code, message: e.message };
}

/** Runs an fs call, turning a system error into a value. Non-system errors (bugs) propagate. */
export async function attempt<T>(op: string, path: string, f: () => Promise<T>): Promise<T | StorageIoError> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof Error && typeof (e as NodeJS.ErrnoException).code === "string") return ioError(op, path, e);
    throw e;
  }
}

export function isIoError(x: unknown): x is StorageIoError {
  return typeof x === "object" && x !== null && (x as { type?: unknown }).type === "Io";
}

// The failures concordctl expects, as values: a command returns one and
// main.ts prints it as `Error: <code>: <message>` and exits with its status.
// Anything thrown instead is a bug in concordctl and keeps its stack trace.

export type CtlError =
  /** The command line is wrong: nothing was sent. Exit status 2. */
  | { readonly type: "Usage"; readonly message: string; readonly command: string }
  /** A member answered with an error body `{error:{code,message}}`. */
  | {
      readonly type: "Api";
      readonly status: number;
      readonly code: string;
      readonly message: string;
      readonly endpoint: string;
      readonly details: Readonly<Record<string, unknown>>;
    }
  /** No endpoint could be reached (or each refused for want of a leader until the deadline). */
  | { readonly type: "Unavailable"; readonly message: string }
  /** A local failure: a file that cannot be read or written, a reply that is not what the API promises. */
  | { readonly type: "Local"; readonly code: string; readonly message: string };

export type Result<T, E = CtlError> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const fail = (error: CtlError): Result<never> => ({ ok: false, error });

export const usage = (command: string, message: string): Result<never> => fail({ type: "Usage", command, message });

/** Exit statuses: 0 done, 1 an API, network or local error, 2 a usage error, 3 a transaction whose comparison failed. */
export const exitCodes = { ok: 0, error: 1, usage: 2, txnFailed: 3 } as const;

export function exitCodeOf(e: CtlError): number {
  return e.type === "Usage" ? exitCodes.usage : exitCodes.error;
}

/** The one line (and for usage errors, a pointer to the help) that main.ts prints on stderr. */
export function formatError(e: CtlError): string {
  switch (e.type) {
    case "Usage": {
      const help = e.command === "" ? "concordctl --help" : `concordctl ${e.command} --help`;
      return `Error: UsageError: ${e.message}\nRun '${help}' for usage.\n`;
    }
    case "Api":
      return `Error: ${e.code}: ${e.message}\n`;
    case "Unavailable":
      return `Error: Unavailable: ${e.message}\n`;
    case "Local":
      return `Error: ${e.code}: ${e.message}\n`;
  }
}

/** The text of an unknown thrown value, for messages. */
export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

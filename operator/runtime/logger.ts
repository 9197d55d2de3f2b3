// The slice of a structured logger the runtime uses; a pino Logger fits.

export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const discard = (): void => undefined;
export const silentLogger: Logger = { debug: discard, info: discard, warn: discard, error: discard };

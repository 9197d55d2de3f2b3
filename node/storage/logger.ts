// The slice of a structured logger that storage needs; a pino Logger fits.

export interface StorageLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export const silentLogger: StorageLogger = {
  info: () => undefined,
  warn: () => undefined,
};

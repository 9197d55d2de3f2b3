// How results are shown: aligned tables for people (the default), JSON for
// programs (`-o json`), and values rendered so that a line stays one line.

import type { Kv } from "./api.ts";

export type OutputFormat = "table" | "json";

/** Columns padded to their widest cell, two spaces apart; the header in capitals. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, k) => Math.max(h.length, ...rows.map((r) => (r[k] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, k) => (k === cells.length - 1 ? c : c.padEnd(widths[k] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join("\n") + "\n";
}

/** `label  value` lines with the labels aligned, for one record. */
export function fields(pairs: readonly (readonly [string, string])[]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(w)}  ${v}`.trimEnd()).join("\n") + "\n";
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** One JSON value per line, for streams (watch, keepalive). */
export function jsonLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

const printable = /^[^\p{Cc}]*$/u;

/**
 * A value on one line: UTF-8 text as it is, text with control characters
 * (a newline, a tab) as a JSON string, and other bytes as their size.
 */
export function showValue(kv: Pick<Kv, "value" | "valueBase64">): string {
  if (kv.value === undefined) return `<binary, ${Buffer.from(kv.valueBase64, "base64").byteLength} bytes>`;
  return printable.test(kv.value) ? kv.value : JSON.stringify(kv.value);
}

export function showSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return "-";
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}

export const dash = (v: string | number | null | undefined): string => (v === null || v === undefined || v === "" ? "-" : String(v));

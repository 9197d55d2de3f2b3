// Keys are strings. Two questions decide what a valid key is: can every
// node encode and decode it to the same bytes (so no lone surrogates, which
// UTF-8 cannot represent), and can it appear in logs, URLs and headers
// without surprises (so no control characters).
//
// Order: keys sort by UTF-16 code units (JavaScript's `<`). This equals
// Unicode code point (and UTF-8 byte) order except that characters above
// U+FFFF sort before U+E000..U+FFFF. Every node runs the same comparison, so
// the order is deterministic; it only differs from etcd's byte order for
// keys that mix those two ranges at the same position.

/** The largest key, in UTF-8 bytes (etcd's default is larger; config keys are paths). */
export const maxKeyBytes = 1024;

/**
 * The value size the HTTP layer should enforce (1.5 MiB, etcd's default
 * request limit). The state machine itself accepts any size: a limit belongs
 * where requests enter, before they cost a log entry.
 */
export const defaultMaxValueBytes = 1.5 * 1024 * 1024;

export type KeyErrorCode = "EmptyKey" | "KeyTooLong" | "ControlCharacter" | "LoneSurrogate";

export interface KeyError {
  readonly code: KeyErrorCode;
  readonly message: string;
}

/** Why `key` is not a valid key, or null. */
export function validateKey(key: string): KeyError | null {
  if (key.length === 0) return { code: "EmptyKey", message: "key is empty" };
  return checkChars(key, "key");
}

/**
 * Why `prefix` is not a valid prefix, or null. A prefix obeys the key rules
 * but may be empty (meaning every key).
 */
export function validatePrefix(prefix: string): KeyError | null {
  return checkChars(prefix, "prefix");
}

function checkChars(s: string, what: string): KeyError | null {
  // UTF-16 length is a lower bound on the UTF-8 length and 3x an upper bound.
  if (s.length > maxKeyBytes) return tooLong(what, utf8Length(s));
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) {
      return { code: "ControlCharacter", message: `${what} has control character U+${hex4(c)} at index ${i}` };
    }
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1); // NaN past the end
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) {
        return { code: "LoneSurrogate", message: `${what} has an unpaired surrogate U+${hex4(c)} at index ${i}` };
      }
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes > maxKeyBytes ? tooLong(what, bytes) : null;
}

function tooLong(what: string, bytes: number): KeyError {
  return { code: "KeyTooLong", message: `${what} is ${bytes} bytes in UTF-8; the limit is ${maxKeyBytes}` };
}

function hex4(c: number): string {
  return c.toString(16).toUpperCase().padStart(4, "0");
}

/** UTF-8 length of a well-formed string (a lone surrogate counts 3, as WTF-8 encodes it). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // 2 code units -> 4 bytes
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/**
 * The least string greater than every string that starts with `prefix`, or
 * null when there is none (the prefix is empty or all U+FFFF). Keys with the
 * prefix are exactly those in [prefix, prefixEnd(prefix)).
 */
export function prefixEnd(prefix: string): string | null {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i);
    if (c < 0xffff) return prefix.slice(0, i) + String.fromCharCode(c + 1);
  }
  return null;
}

/** Lexicographic byte order, for `value` comparisons in transactions. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

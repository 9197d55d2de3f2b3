// Kubernetes resource quantities ("1Gi", "500M", "1.5e9", "250m"), parsed and
// compared the way the apiserver does (k8s.io/apimachinery resource.ParseQuantity
// and Quantity.Cmp), so that the operator agrees with the CRD's CEL rules, which
// call `quantity(...)`.
//
// Grammar: <sign>?<number><suffix>?, where <number> is 1, 1.5, 1. or .5 and
// <suffix> is a binary SI suffix (Ki Mi Gi Ti Pi Ei), a decimal SI suffix
// (n u m k M G T P E), or a decimal exponent (e3, E-2, e+6). "1E" is 10^18;
// "1E3" is 1000.

/** A parsed quantity. */
export interface Quantity {
  /**
   * The value in units of 10^-9. Invariant: as in ParseQuantity, a value with
   * finer precision is rounded away from zero, and magnitudes are capped at
   * 2^63-1 whole units.
   */
  readonly nanos: bigint;
}

export type QuantityResult = { readonly ok: true; readonly value: Quantity } | { readonly ok: false; readonly error: string };

/**
 * Non-negative quantities, for schemas: the grammar without a minus sign, and
 * with integer exponents of at most 9 digits (ParseQuantity rejects fractional
 * exponents and those beyond int32). Invariant: every string it matches parses.
 */
export const quantityPattern = "^\\+?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,9})?$";

const grammar = /^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([KMGTPE])i|([numkMGTPE])|[eE]([+-]?[0-9]+))?$/;

const binaryPowers: Readonly<Record<string, number>> = { K: 10, M: 20, G: 30, T: 40, P: 50, E: 60 };
const decimalPowers: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const int32Max = 2 ** 31 - 1;
const capNanos = (2n ** 63n - 1n) * 10n ** 9n;
const capDigits = capNanos.toString().length;

export function parseQuantity(input: string | number): QuantityResult {
  let text: string;
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input)) return { ok: false, error: `${input} is not an integer quantity` };
    text = String(input);
  } else {
    text = input;
  }
  const m = grammar.exec(text);
  if (m === null) return { ok: false, error: `"${text}" is not a quantity (e.g. 1Gi, 500M, 1.5e9, 250m)` };
  const [, sign = "", number = "", binary, decimal, exponent] = m;
  const [whole = "", fraction = ""] = number.split(".");
  let pow2 = 0;
  let pow10 = 0;
  if (binary !== undefined) pow2 = binaryPowers[binary] ?? 0;
  else if (decimal !== undefined) pow10 = decimalPowers[decimal] ?? 0;
  else if (exponent !== undefined) {
    // ParseQuantity reads the exponent as an int32.
    const e = Number(exponent);
    if (Math.abs(e) > int32Max) return { ok: false, error: `"${text}": exponent out of range` };
    pow10 = e;
  }
  const nanos = magnitudeNanos(BigInt(whole + fraction) << BigInt(pow2), 9 - fraction.length + pow10);
  return { ok: true, value: { nanos: sign === "-" ? -nanos : nanos } };
}

/** ceil(mantissa * 10^shift), capped; shift may be far beyond what BigInt can raise 10 to. */
function magnitudeNanos(mantissa: bigint, shift: number): bigint {
  if (mantissa === 0n) return 0n;
  const digits = mantissa.toString().length;
  if (shift >= 0) {
    if (digits + shift > capDigits) return capNanos;
    const v = mantissa * 10n ** BigInt(shift);
    return v > capNanos ? capNanos : v;
  }
  // Below one nano: ParseQuantity rounds any non-zero value up to 1n.
  if (-shift > digits) return 1n;
  const divisor = 10n ** BigInt(-shift);
  const q = mantissa / divisor;
  const v = q * divisor === mantissa ? q : q + 1n;
  return v > capNanos ? capNanos : v;
}

export function isQuantity(input: string | number): boolean {
  return parseQuantity(input).ok;
}

/** Quantity.Cmp: -1, 0 or 1. */
export function compareQuantity(a: Quantity, b: Quantity): -1 | 0 | 1 {
  return a.nanos < b.nanos ? -1 : a.nanos > b.nanos ? 1 : 0;
}

/**
 * Compares two quantities as written in a spec, e.g. compareQuantities("1Gi",
 * "1024Mi") === 0. Throws on a value that is not a quantity: values that passed
 * the schema always are, so that would be a bug.
 */
export function compareQuantities(a: string | number, b: string | number): -1 | 0 | 1 {
  return compareQuantity(mustParse(a), mustParse(b));
}

function mustParse(q: string | number): Quantity {
  const r = parseQuantity(q);
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

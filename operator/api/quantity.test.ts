import { describe, expect, it } from "vitest";
import { compareQuantities, parseQuantity, quantityPattern } from "./quantity.ts";

const giB = 2n ** 30n;
const nano = 10n ** 9n;

function nanos(q: string | number): bigint {
  const r = parseQuantity(q);
  if (!r.ok) throw new Error(r.error);
  return r.value.nanos;
}

describe("parseQuantity", () => {
  it.each<[string | number, bigint]>([
    ["0", 0n],
    ["1", nano],
    [1073741824, giB * nano],
    ["1Ki", 1024n * nano],
    ["1Mi", 2n ** 20n * nano],
    ["1Gi", giB * nano],
    ["1Ti", 2n ** 40n * nano],
    ["1Pi", 2n ** 50n * nano],
    ["1Ei", 2n ** 60n * nano],
    ["1.5Gi", (3n * giB * nano) / 2n],
    [".5Mi", 2n ** 19n * nano],
    ["1n", 1n],
    ["1u", 1000n],
    ["250m", 250_000_000n],
    ["1k", 1000n * nano],
    ["500M", 500_000_000n * nano],
    ["1G", 10n ** 9n * nano],
    ["2T", 2n * 10n ** 12n * nano],
    ["3P", 3n * 10n ** 15n * nano],
    ["1E", 10n ** 18n * nano], // E alone is exa...
    ["1E3", 1000n * nano], // ...and E with digits an exponent
    ["1e3", 1000n * nano],
    ["1.5e9", 15n * 10n ** 8n * nano],
    ["1e+3", 1000n * nano],
    ["25e-1", 25n * 10n ** 8n],
    ["+1Gi", giB * nano],
    ["5.", 5n * nano],
    ["0.000Gi", 0n],
    ["-1Gi", -giB * nano],
  ])("%s", (q, want) => {
    expect(nanos(q)).toBe(want);
  });

  it("rounds values finer than a nano away from zero, as ParseQuantity does", () => {
    expect(nanos("0.1n")).toBe(1n);
    expect(nanos("1.0000000001")).toBe(nano + 1n);
    expect(nanos("1e-2000000000")).toBe(1n);
    expect(nanos("-0.1n")).toBe(-1n);
  });

  it("caps magnitudes at 2^63-1, as ParseQuantity does", () => {
    const cap = (2n ** 63n - 1n) * nano;
    expect(nanos("1e2000000000")).toBe(cap);
    expect(nanos("100Ei")).toBe(cap);
    expect(nanos("-100Ei")).toBe(-cap);
  });

  it.each(["", " 1Gi", "1Gi ", "1GB", "1gi", "1K", "1e", "1e1.5", "1.2.3", ".", "Gi", "1Gi1", "--1", "1e3000000000", "abc"])(
    "rejects %j",
    (q) => {
      expect(parseQuantity(q).ok).toBe(false);
    },
  );

  it("rejects numbers that are not exact integers", () => {
    expect(parseQuantity(1.5).ok).toBe(false);
    expect(parseQuantity(Number.NaN).ok).toBe(false);
    expect(parseQuantity(2 ** 60).ok).toBe(false);
  });

  it("quantityPattern accepts non-negative quantities the parser accepts", () => {
    const re = new RegExp(quantityPattern);
    for (const q of ["1Gi", "500M", "1.5Gi", ".5", "5.", "+1", "1E", "1E3", "1e-3", "250m", "1n"]) {
      expect(re.test(q), q).toBe(true);
      expect(parseQuantity(q).ok, q).toBe(true);
    }
    for (const q of ["-1Gi", "1GB", "1e", "1e1.5", "1K", " 1", "1e3000000000", "1e0000000001"]) expect(re.test(q), q).toBe(false);
    // The pattern's exponent bound keeps it inside what the parser accepts.
    for (const q of ["1e999999999", "1e-999999999"]) {
      expect(re.test(q), q).toBe(true);
      expect(parseQuantity(q).ok, q).toBe(true);
    }
  });
});

describe("compareQuantities", () => {
  it.each<[string | number, string | number, -1 | 0 | 1]>([
    ["1Gi", "1024Mi", 0],
    ["1Gi", 1073741824, 0],
    ["1Gi", "1073741824", 0],
    ["1G", "1000M", 0],
    ["1k", "1e3", 0],
    ["0.5Gi", "512Mi", 0],
    ["500M", "1Gi", -1],
    ["1.5Gi", "1Gi", 1],
    ["1G", "1Gi", -1],
    ["1000Mi", "1Gi", -1],
    ["2Gi", "1Gi", 1],
    ["100m", "0.1", 0],
    ["1Ei", "1E", 1],
  ])("%s vs %s is %i", (a, b, want) => {
    expect(compareQuantities(a, b)).toBe(want);
    expect(compareQuantities(b, a)).toBe(want === 0 ? 0 : -want);
  });

  it("throws on something that is not a quantity: schema-checked values always are", () => {
    expect(() => compareQuantities("1GB", "1Gi")).toThrow(/not a quantity/);
  });
});

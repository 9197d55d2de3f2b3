// Kubernetes resource quantities ("500m", "2Gi", "1e3") as numbers of base units,
// for the downward API's resourceFieldRef and the provisioner's PV capacity.

const binary: Readonly<Record<string, number>> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const decimal: Readonly<Record<string, number>> = { n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** The quantity's value in base units (cores, bytes), or null when it does not parse. */
export function parseQuantity(q: string | number): number | null {
  if (typeof q === "number") return Number.isFinite(q) ? q : null;
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$/.exec(q.trim());
  if (m === null) return null;
  const num = Number(m[1]);
  if (m[2] !== undefined) return Number(`${m[1] ?? ""}${m[2]}`);
  const suffix = m[3] ?? "";
  const mult = binary[suffix] ?? decimal[suffix];
  if (mult === undefined) return null;
  return num * mult;
}

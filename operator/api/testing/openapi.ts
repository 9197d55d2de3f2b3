// Test helpers that read the generated CRD schema the way the apiserver does:
// defaulting (crd.ts's applyDefaults) and the OpenAPI value validations the
// schema uses. CEL rules are not evaluated here; types.ts mirrors each of them
// in TypeScript, and the tests check that the mirror and the CRD list the
// same rules.

import { loadYaml } from "@kubernetes/client-node";
import type { JSONSchemaProps } from "../crd.ts";

export { applyDefaults } from "../crd.ts";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** String length as the apiserver counts it: Unicode code points (Go runes), not UTF-16 units. */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

const dateTime = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function typeOk(v: unknown, type: NonNullable<JSONSchemaProps["type"]>): boolean {
  switch (type) {
    case "object":
      return isRecord(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "integer":
      return Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "boolean":
      return typeof v === "boolean";
  }
}

/**
 * The OpenAPI checks of a structural schema, as the apiserver applies them
 * after defaulting. Unknown fields are not errors: the apiserver prunes them,
 * as zod's objects strip them.
 */
export function validateValue(v: unknown, s: JSONSchemaProps, path = ""): string[] {
  const at = path === "" ? "<root>" : path;
  if (s["x-kubernetes-int-or-string"] === true) {
    if (!Number.isInteger(v) && typeof v !== "string") return [`${at}: must be an integer or a string`];
  } else if (s.type !== undefined && !typeOk(v, s.type)) {
    return [`${at}: must be of type ${s.type}`];
  }
  const errors: string[] = [];
  if (s.enum !== undefined && !s.enum.some((e) => e === v)) errors.push(`${at}: must be one of ${s.enum.join(", ")}`);
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) errors.push(`${at}: must be at least ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) errors.push(`${at}: must be at most ${s.maximum}`);
  }
  if (typeof v === "string") {
    const length = codePoints(v);
    if (s.minLength !== undefined && length < s.minLength) errors.push(`${at}: must be at least ${s.minLength} characters`);
    if (s.maxLength !== undefined && length > s.maxLength) errors.push(`${at}: must be at most ${s.maxLength} characters`);
    if (s.pattern !== undefined && !new RegExp(s.pattern).test(v)) errors.push(`${at}: must match ${s.pattern}`);
    if (s.format === "date-time" && !dateTime.test(v)) errors.push(`${at}: must be a date-time`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errors.push(`${at}: must have at least ${s.minItems} items`);
    if (s.maxItems !== undefined && v.length > s.maxItems) errors.push(`${at}: must have at most ${s.maxItems} items`);
    const items = s.items;
    if (items !== undefined) v.forEach((item, i) => errors.push(...validateValue(item, items, `${path}[${i}]`)));
    const keys = s["x-kubernetes-list-map-keys"];
    if (s["x-kubernetes-list-type"] === "map" && keys !== undefined) {
      const seen = new Set(v.map((item) => JSON.stringify(keys.map((k) => (isRecord(item) ? item[k] : undefined)))));
      if (seen.size !== v.length) errors.push(`${at}: duplicate entries for key ${keys.join(",")}`);
    }
  }
  if (isRecord(v)) {
    const n = Object.keys(v).length;
    if (s.minProperties !== undefined && n < s.minProperties) errors.push(`${at}: must have at least ${s.minProperties} properties`);
    if (s.maxProperties !== undefined && n > s.maxProperties) errors.push(`${at}: must have at most ${s.maxProperties} properties`);
    for (const r of s.required ?? []) if (!(r in v)) errors.push(`${path}.${r}: required`);
    for (const [k, x] of Object.entries(v)) {
      const p = s.properties?.[k] ?? s.additionalProperties;
      if (p !== undefined) errors.push(...validateValue(x, p, `${path}.${k}`));
    }
  }
  return errors;
}

/**
 * YAML to plain data. client-node's loadYaml turns objects of built-in kinds
 * into its models, so the apiVersion is masked to keep the data as written.
 */
export function loadPlainYaml(text: string): Record<string, unknown> {
  const apiVersion = /^apiVersion: (.*)$/m.exec(text)?.[1] ?? "";
  const loaded = loadYaml<Record<string, unknown>>(text.replace(/^apiVersion: .*$/m, "apiVersion: plain.invalid/v1"));
  return { ...(JSON.parse(JSON.stringify(loaded)) as Record<string, unknown>), apiVersion };
}

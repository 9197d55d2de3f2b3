// Lint runs in `npm test`. Type-aware rules catch promise misuse in the
// server code; the Raft core additionally may not touch time, randomness or I/O.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "dist/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true }],
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
      "@typescript-eslint/no-unnecessary-condition": ["error", { allowConstantLoopConditions: true }],
      // @kubernetes/client-node declares its API objects as data-only classes;
      // plain object literals are the intended way to build them.
      "@typescript-eslint/no-unsafe-class-instance-assignment": "off",
    },
  },
  {
    // The consensus core is a pure state machine: no clocks, no randomness, no I/O.
    files: ["node/raft/**/*.ts"],
    ignores: ["node/raft/**/*.test.ts"],
    rules: {
      "no-restricted-globals": ["error", "setTimeout", "setInterval", "setImmediate", "queueMicrotask", "fetch", "process"],
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: "The Raft core gets time only through tick()." },
        { object: "Math", property: "random", message: "The Raft core gets randomness only from the injected Rng." },
        { object: "performance", property: "now", message: "The Raft core gets time only through tick()." },
      ],
      "no-restricted-imports": ["error", { patterns: ["node:*", "fs", "net", "http", "child_process"] }],
    },
  },
  { files: ["eslint.config.js"], ...tseslint.configs.disableTypeChecked },
);

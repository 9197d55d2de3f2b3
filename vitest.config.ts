import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["bin/**/*.test.ts", "node/**/*.test.ts", "chaos/**/*.test.ts", "operator/**/*.test.ts", "e2e/**/*.test.ts", "bench/**/*.test.ts", "ctl/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Most integration tests wait on real processes rather than compute, so
    // two files at a time fit two cores.
    maxWorkers: 2,
  },
});

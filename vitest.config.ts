import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // Tests start real redis-server / S3 servers and child processes: give them room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: run files in parallel but not so many that model inference starves.
    maxWorkers: 2,
    pool: "forks",
  },
});

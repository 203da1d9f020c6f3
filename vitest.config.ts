import { defineConfig } from "vitest/config";
import { HOOK_TIMEOUT_MS, TEST_TIMEOUT_MS } from "./test/support/timeouts.js";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // Tests start real redis-server / S3 servers and child processes. The limits and the waits
    // inside tests come from one module, so a wait always expires (with its own diagnostic)
    // before vitest's limit; tests with longer waits declare their own budget.
    testTimeout: TEST_TIMEOUT_MS,
    hookTimeout: HOOK_TIMEOUT_MS,
    // Two cores: run files in parallel but not so many that model inference starves.
    maxWorkers: 2,
    pool: "forks",
  },
});

/**
 * Time limits of the test suite, in one place so that they agree: every wait inside a test ends
 * before the test's own limit, and so a test that fails on a slow machine fails with its own
 * diagnostic (what it waited for, what it last saw, the processes' output), never with vitest's
 * bare "Test timed out". vitest.config.ts reads the defaults from here.
 *
 * A test whose waits add up to more than {@link TEST_TIMEOUT_MS} declares its own limit with
 * {@link budget}: the sum of its waits plus {@link SLACK_MS} for the work between them.
 */

/** vitest's limit for a test that declares none. */
export const TEST_TIMEOUT_MS = 120_000;

/** vitest's limit for a hook (beforeAll, afterAll) that declares none. */
export const HOOK_TIMEOUT_MS = 120_000;

/** A heavy set-up (thousands of uploads, a 200 MB object, several worker processes) declares this. */
export const HEAVY_SETUP_TIMEOUT_MS = 300_000;

/** Room in a test's budget for the work between its waits (reading results, checking outputs). */
export const SLACK_MS = 60_000;

/**
 * The longest a whole run may take (`enqueue --wait` until the results table is written). A few
 * hundred images on the tiny model take 10–60 s on 2 loaded cores; four times that is a failure.
 */
export const RUN_TIMEOUT_MS = 240_000;

/** The longest a process may take to start and say it is ready (model loaded, connected). */
export const START_TIMEOUT_MS = 60_000;

/** The longest a short CLI command (schedule add, status, a usage error) may take. */
export const COMMAND_TIMEOUT_MS = 60_000;

/** A test's own limit: its waits one after the other, plus slack for the work in between. */
export function budget(...waitsMs: number[]): number {
  return waitsMs.reduce((sum, ms) => sum + ms, SLACK_MS);
}

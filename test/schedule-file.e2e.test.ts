import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliProcess,
  logLines,
  metricsPortOf,
  runCli,
  startProducerProcess,
  stopProcesses,
} from "./support/cli.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { sleepUntil, uniqueName } from "./support/services.js";

interface ListedSchedule {
  name: string;
  cron?: string;
  tz?: string;
  everyMs?: number;
  input: string;
  outputPrefix: string;
  skipExisting: boolean;
  chunkSize?: number;
  nextAt: string | null;
}

// Schedules that live in git: `memscore producer --schedules FILE` makes the queue's schedules
// exactly the file's at start, so they are reviewed like code and survive losing Redis.
describe("schedules applied from a file at producer start", () => {
  let fixture: RunFixture;
  let dir: string;
  let file: string;
  const producers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  const list = async (): Promise<ListedSchedule[]> => {
    const listed = await runCli(["schedule", "list", "--json"], fixture.env);
    expect(listed.code, listed.stderr).toBe(0);
    return (JSON.parse(listed.stdout) as { schedules: ListedSchedule[] }).schedules;
  };

  /** Starts a producer with the file, waits until it is ready and returns its "applied" log entry. */
  const startWithFile = async () => {
    const producer = startProducerProcess(fixture.env, ["--schedules", file]);
    producers.push(producer);
    await sleepUntil(() => logLines(producer.output(), "schedules applied from file").length > 0, {
      what: "logLines(producer.output(), 'schedules applied from file').length > 0",
      timeoutMs: 60_000,
    });
    return { producer, applied: logLines(producer.output(), "schedules applied from file")[0] };
  };

  const writeSchedules = (text: string) => writeFile(file, text);
  const nightly = (cron: string) => `
  - name: photos-nightly
    cron: "${cron}"
    tz: Europe/Paris
    input: s3://${input}/photos/
    outputPrefix: s3://${output}/photos/`;
  const inbox = `
  - name: inbox
    everyMs: 3600000
    input: s3://${input}/inbox/
    outputPrefix: s3://${output}/inbox/
    chunkSize: 16`;

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    dir = await mkdtemp(join(tmpdir(), "memscore-schedules-"));
    file = join(dir, "schedules.yaml");
  });

  afterAll(async () => {
    await stopProcesses(producers);
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("adds, keeps, replaces and removes schedules to match the file", async () => {
    // One added by hand: the file does not list it, so the producer removes it.
    const adhoc = await runCli(
      ["schedule", "add", "by-hand", "--every", "60000", `s3://${input}/x/`, "--out", `s3://${output}/x/`],
      fixture.env,
    );
    expect(adhoc.code, adhoc.stderr).toBe(0);

    await writeSchedules(`schedules:${nightly("30 2 * * *")}${inbox}\n`);
    const first = await startWithFile();
    // Bound by the producer itself (port 0), so no other process can take it first.
    const metricsPort = await metricsPortOf(first.producer);
    expect(first.applied).toMatchObject({
      added: ["photos-nightly", "inbox"],
      updated: [],
      removed: ["by-hand"],
    });
    const schedules = await list();
    expect(schedules.map((s) => s.name)).toEqual(["inbox", "photos-nightly"]);
    expect(schedules[0]).toMatchObject({
      everyMs: 3_600_000,
      input: `s3://${input}/inbox/`,
      outputPrefix: `s3://${output}/inbox/`,
      skipExisting: true,
      chunkSize: 16,
    });
    expect(schedules[1]).toMatchObject({ cron: "30 2 * * *", tz: "Europe/Paris", skipExisting: true });
    // The producer exports when each schedule is next due (what the stale-schedule alert reads).
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const queue = fixture.env.MEMSCORE_QUEUE as string;
    for (const s of schedules) {
      const line = metrics
        .split("\n")
        .find((l) =>
          l.startsWith(`memscore_schedule_next_run_timestamp_seconds{queue="${queue}",schedule="${s.name}"}`),
        );
      expect(Number(line?.split(" ").at(-1)), s.name).toBe(Date.parse(s.nextAt as string) / 1000);
    }
    await stopProcesses([first.producer]);

    // Same file again (a restart, or the second replica): nothing is rewritten, so the interval
    // schedule keeps its next iteration.
    const second = await startWithFile();
    expect(second.applied).toMatchObject({
      added: [],
      updated: [],
      removed: [],
      unchanged: ["photos-nightly", "inbox"],
    });
    expect(await list()).toEqual(schedules);
    await stopProcesses([second.producer]);

    // An edit in git: one cadence changed, one entry deleted.
    await writeSchedules(`schedules:${nightly("0 3 * * *")}\n`);
    const third = await startWithFile();
    expect(third.applied).toMatchObject({ added: [], updated: ["photos-nightly"], removed: ["inbox"] });
    const edited = await list();
    expect(edited.map((s) => [s.name, s.cron])).toEqual([["photos-nightly", "0 3 * * *"]]);
    await stopProcesses([third.producer]);
  });

  it("puts every schedule back after Redis lost its data", async () => {
    const redis = new Redis(fixture.env.REDIS_URL as string);
    try {
      await redis.flushall();
    } finally {
      redis.disconnect();
    }
    expect(await list()).toEqual([]);
    const { producer, applied } = await startWithFile();
    expect(applied).toMatchObject({ added: ["photos-nightly"] });
    expect((await list()).map((s) => s.name)).toEqual(["photos-nightly"]);
    await stopProcesses([producer]);
  });

  it("refuses a bad file before changing anything: one line naming the entry and field, exit 2", async () => {
    const before = await list();
    await writeSchedules(`schedules:${nightly("0 3 * * *")}\n  - name: broken\n    cron: "every day"\n`);
    const result = await runCli(["producer", "--schedules", file], {
      ...fixture.env,
      MEMSCORE_METRICS_PORT: "0",
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(
      /^memscore producer: .*schedules\.yaml: schedules\[1\] \(broken\)\.cron: "every day" is not a valid cron pattern/,
    );
    const missing = await runCli(["producer", "--schedules", join(dir, "nope.yaml")], fixture.env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.yaml: cannot read the schedule file: ENOENT/);
    expect(await list()).toEqual(before);
  });
});

import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeArchive } from "./support/archive.js";
import {
  type CliProcess,
  exitOf,
  jsonLines,
  runCli,
  startCli,
  startWorkerProcess,
  stopProcesses,
} from "./support/cli.js";
import { type FaultProxy, startFaultProxy } from "./support/fault-proxy.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { putObjects } from "./support/s3.js";
import { sleepUntil, type TestServices, uniqueName } from "./support/services.js";
import { budget, RUN_TIMEOUT_MS } from "./support/timeouts.js";

const IMAGES = 40;
const CHUNK = 2;
const RUN_ID = "watched-run";

/** One frame of `memscore status --watch --json` (the fields this test reads). */
interface StatusFrame {
  readAt: string;
  imagesPerSecond: number;
  workers: { count: number };
  runs: {
    runId: string;
    done: number;
    total: number;
    imagesPerSecond: number;
    etaSeconds: number | null;
    finishedAt: string | null;
  }[];
}

// `memscore status --watch` follows a run as it goes: throughput from one frame to the next, an ETA
// from that throughput, and the end of the run; Ctrl-C ends it.
describe("memscore status --watch (a run in progress, one worker behind a slow S3)", () => {
  let fixture: RunFixture;
  let services: TestServices;
  let proxy: FaultProxy;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  const processes: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ services, env, s3 } = fixture);
    const archive = await makeArchive("photos/", IMAGES);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    // Every S3 request of the worker answered after 250 ms: the run lasts long enough (tens of
    // seconds, one chunk of two images at a time) for several frames to see it in progress.
    proxy = await startFaultProxy({
      target: services.s3.endpoint,
      faultRate: 1,
      faults: ["slow"],
      slowMs: 250,
    });
  });

  afterAll(async () => {
    await stopProcesses(processes);
    await proxy?.stop();
    await fixture?.stop();
  });

  it(
    "shows throughput and an ETA while the run goes on, then the run finished; Ctrl-C exits 0",
    async () => {
      const enqueued = await runCli(
        [
          "enqueue",
          `s3://${input}/photos/`,
          "--out",
          `s3://${output}/scores/`,
          "--run-id",
          RUN_ID,
          "--chunk-size",
          String(CHUNK),
        ],
        env,
      );
      expect(enqueued.code, enqueued.stderr).toBe(0);
      // Both displays: JSON frames for the numbers, text frames for what a person reads.
      const json = startCli(["status", "--run", RUN_ID, "--watch", "--json"], env);
      const text = startCli(["status", "--run", RUN_ID, "--watch"], env);
      const worker = startWorkerProcess({ ...env, S3_ENDPOINT: proxy.endpoint }, [
        "--concurrency",
        "1",
        "--batch-size",
        "2",
      ]);
      processes.push(json, text, worker);
      const frames = () => jsonLines<StatusFrame>(json.stdout());
      const run = (frame: StatusFrame) => frame.runs.find((r) => r.runId === RUN_ID);

      await sleepUntil(
        () => frames().some((f) => run(f)?.finishedAt) && / images {2}finished /.test(text.stdout()),
        {
          what: "both displays showing the run finished",
          timeoutMs: RUN_TIMEOUT_MS,
          intervalMs: 250,
          state: () => ({ json: json.tail(), text: text.tail().slice(-2_000), worker: worker.tail() }),
          stopIf: () => (json.running() && text.running() ? undefined : "memscore status --watch exited"),
        },
      );
      // Ctrl-C is how --watch ends: exit 0, for both displays.
      json.child.kill("SIGINT");
      text.child.kill("SIGINT");
      expect((await exitOf(json)).code, json.stderr()).toBe(0);
      expect((await exitOf(text)).code, text.stderr()).toBe(0);

      const all = frames();
      const seen = all.map(run);
      expect(seen.every((r) => r !== undefined && r.total === IMAGES)).toBe(true);
      // Progress only moves forward, frame after frame.
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i]?.done, `frame ${i}`).toBeGreaterThanOrEqual(seen[i - 1]?.done ?? 0);
      }
      // Throughput is the images finished between two frames over the time between them, and the
      // ETA is what is left at that rate.
      const measured = all.slice(1).flatMap((frame, i) => {
        const now = run(frame);
        const before = run(all[i] as StatusFrame);
        if (!now || !before || now.finishedAt || now.imagesPerSecond === 0) return [];
        return [
          {
            frame,
            now,
            before,
            seconds: (Date.parse(frame.readAt) - Date.parse(all[i]?.readAt ?? "")) / 1000,
          },
        ];
      });
      expect(
        measured.length,
        `frames with a throughput while the run went on:\n${json.stdout()}`,
      ).toBeGreaterThan(0);
      for (const { frame, now, before, seconds } of measured) {
        expect(now.imagesPerSecond).toBeCloseTo((now.done - before.done) / seconds, 6);
        expect(frame.imagesPerSecond).toBeCloseTo(now.imagesPerSecond, 6);
        expect(now.etaSeconds).toBeCloseTo((now.total - now.done) / now.imagesPerSecond, 6);
        expect(frame.workers.count).toBe(1);
      }
      const last = seen.at(-1);
      expect(last).toMatchObject({ done: IMAGES, total: IMAGES, etaSeconds: 0 });

      // The text display: one frame every 2 s (separated by a blank line off a terminal), with the
      // rate and a running ETA while the run goes on, "finished" at the end.
      const textFrames = text
        .stdout()
        .split("\n\n")
        .filter((f) => f.includes(`queue ${env.MEMSCORE_QUEUE}`));
      expect(textFrames.length).toBeGreaterThan(1);
      const progress = new RegExp(
        `^ {2}${RUN_ID} {2}\\[[#-]{20}\\] +\\d+\\.\\d% {2}(\\d+)/${IMAGES} images {2}(\\d+\\.\\d) img/s {2}ETA (\\d+:\\d{2}|--:--)$`,
        "m",
      );
      const running = textFrames.map((f) => progress.exec(f)).filter((m) => m !== null && Number(m[2]) > 0);
      expect(running.length, text.stdout()).toBeGreaterThan(0);
      for (const m of running) expect(m?.[3], m?.[0]).toMatch(/^\d+:\d{2}$/);
      expect(textFrames.at(-1)).toMatch(
        new RegExp(`${RUN_ID} .*100\\.0% {2}${IMAGES}/${IMAGES} images {2}finished`),
      );
      expect(textFrames.at(-1)).toMatch(/^throughput \d+\.\d images\/s$/m);
    },
    budget(RUN_TIMEOUT_MS),
  );
});

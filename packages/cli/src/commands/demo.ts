import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { enqueueRun, waitForRun } from "@memscore/producer";
import {
  asPrefix,
  closeRedisConnection,
  createLogger,
  createRedisConnection,
  describeError,
  heatmapSuffix,
  type MemscoreConfig,
  MemscoreError,
  parseS3Uri,
  type ResultRow,
  Storage,
} from "@memscore/shared";
import { buildRunReport } from "@memscore/shared/report";
import { listLocalImages, WorkerService } from "@memscore/worker";
import { integerFlag, parseCommandArgs, resolveCommandConfig, stringFlag } from "../args.js";
import { startLocalRedis } from "../local-services/local-redis.js";
import {
  LOCAL_S3_ACCESS_KEY_ID,
  LOCAL_S3_SECRET_ACCESS_KEY,
  startLocalS3,
} from "../local-services/local-s3.js";
import { formatRunProgress, statusWriter } from "../progress-display.js";
import { UsageError } from "../usage-error.js";

/** The sample photographs shipped with the CLI (see samples/README.md). */
export const SAMPLES_DIR = fileURLToPath(new URL("../../samples", import.meta.url));

const HELP = `usage: memscore demo [DIR] [options]

The whole pipeline on one machine: uploads DIR (default: the bundled sample photographs) to S3,
enqueues a run, scores it with an in-process worker, prints the top and bottom images, and copies
every output to --out-dir. With no REDIS_URL it starts a private redis-server; with no S3_ENDPOINT
it starts an S3 API server in process. Everything it starts, it stops.

options:
  --out-dir DIR     where to copy the outputs (default ./memscore-out)
  --bucket NAME     bucket for inputs and outputs (default memscore-demo)
  --top N           how many best and worst images to print (default 3)
  --model PATH      model file (MEMSCORE_MODEL, default: the bundled untrained model)`;

/** Things the demo started, stopped in reverse order whatever happens. */
class Cleanup {
  private readonly steps: { name: string; run: () => Promise<unknown> | unknown }[] = [];
  add(name: string, run: () => Promise<unknown> | unknown): void {
    this.steps.push({ name, run });
  }
  async runAll(): Promise<void> {
    for (const step of this.steps.reverse()) {
      try {
        await step.run();
      } catch (error) {
        process.stderr.write(`demo: stopping ${step.name} failed: ${describeError(error)}\n`);
      }
    }
  }
}

const say = (line: string) => process.stderr.write(`${line}\n`);

export async function demoCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      "out-dir": { type: "string" },
      bucket: { type: "string" },
      top: { type: "string" },
      model: { type: "string" },
    },
    HELP,
  );
  if (!parsed) return 0;
  if (parsed.positionals.length > 1) throw new UsageError(`give at most one directory`, HELP);
  const sourceDir = parsed.positionals[0] ?? SAMPLES_DIR;
  const outDir = resolve(stringFlag(parsed.values, "out-dir") ?? "memscore-out");
  const bucket = stringFlag(parsed.values, "bucket") ?? "memscore-demo";
  const top = integerFlag(parsed.values, "top", { min: 1, max: 1_000 }) ?? 3;
  const files = await listLocalImages([sourceDir]);
  if (files.length === 0) throw new UsageError(`no images found in ${sourceDir}`);

  const cleanup = new Cleanup();
  try {
    const env = { ...process.env };
    if (!env.REDIS_URL) {
      const redis = await startLocalRedis();
      cleanup.add("redis-server", () => redis.stop());
      env.REDIS_URL = redis.url;
      say(`demo: started a private redis-server on ${redis.host}:${redis.port}`);
    }
    if (!env.S3_ENDPOINT) {
      const s3 = await startLocalS3();
      cleanup.add("S3 API server", () => s3.stop());
      env.S3_ENDPOINT = s3.endpoint;
      // The SDK reads credentials from the environment; the local server accepts only these.
      process.env.AWS_ACCESS_KEY_ID = LOCAL_S3_ACCESS_KEY_ID;
      process.env.AWS_SECRET_ACCESS_KEY = LOCAL_S3_SECRET_ACCESS_KEY;
      say(`demo: started an S3 API server at ${s3.endpoint}`);
    }
    const config: MemscoreConfig = resolveCommandConfig(parsed.values, { model: "model" }, env, {
      queueName: `memscore-demo-${randomBytes(3).toString("hex")}`,
      concurrency: 2,
      metricsPort: 0,
    });
    const logger = createLogger({ level: "warn", format: "text" });
    const storage = Storage.fromConfig(config);
    cleanup.add("S3 client", () => storage.close());
    await storage.client.send(new CreateBucketCommand({ Bucket: bucket })).catch((error: unknown) => {
      // An existing bucket of ours is fine; anything else is reported by the first upload.
      if (!/BucketAlready/.test((error as Error).name))
        logger.debug("create bucket", { error: describeError(error) });
    });

    const runId = `demo-${new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-")}`;
    const inputPrefix = `s3://${bucket}/${runId}/input/`;
    const outputPrefix = `s3://${bucket}/${runId}/output/`;
    say(`demo: uploading ${files.length} images from ${sourceDir} to ${inputPrefix}`);
    for (const file of files) {
      const { bucket: b, key } = parseS3Uri(inputPrefix + file.name);
      await storage.put({ bucket: b, key }, await readFile(file.path), {
        contentType: "application/octet-stream",
      });
    }

    const worker = await WorkerService.start(config, { logger });
    // Graceful: once the run is complete nothing is in flight, so the drain is immediate; after
    // an error it hands what is left back within the deadline.
    cleanup.add("worker", () => worker.stop({ graceful: true, timeoutMs: 5_000 }));
    if (!worker.model.trained) {
      say(`demo: the model (${worker.model.name}) is untrained: scores show the pipeline, not memorability`);
    }
    const redis = createRedisConnection(config.redisUrl, { name: "memscore-demo", logger });
    cleanup.add("redis connection", () => closeRedisConnection(redis));

    await enqueueRun({
      storage,
      redis,
      queueName: config.queueName,
      runId,
      input: { prefix: inputPrefix },
      outputPrefix,
      chunkSize: 8,
      heatmapFormat: config.heatmapFormat,
      logger,
    });
    const status = statusWriter();
    await waitForRun(redis, config.queueName, runId, {
      pollMs: 200,
      onProgress: (p) => status.update(formatRunProgress(p), p.snapshot.completedAt !== undefined),
    });
    status.end();

    // Copy every output of the run to the local directory, keeping the S3 layout.
    const out = parseS3Uri(outputPrefix);
    let copied = 0;
    for await (const object of storage.list(out)) {
      const { body } = await storage.get({ bucket: out.bucket, key: object.key }, 1024 ** 3);
      const target = join(outDir, relative(asPrefix(out.key), object.key));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, body);
      copied++;
    }
    const reportPath = join(outDir, "_runs", runId, "report.html");
    await writeFile(reportPath, (await buildRunReport(storage, { outputPrefix, runId }, { top: 12 })).html);
    const rows = (await readFile(join(outDir, "_runs", runId, "results.jsonl"), "utf8"))
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as ResultRow);
    const scored = rows.filter((r) => r.status === "scored").sort((a, b) => (b.score ?? 0) - (a.score ?? 0));
    const name = (uri: string) => uri.slice(inputPrefix.length);
    const table = (list: ResultRow[]) =>
      list.map((r) => `  ${(r.score ?? 0).toFixed(6).padStart(10)}  ${name(r.uri)}`).join("\n");
    // With fewer than 2 × top images the two lists share the rest, never an image.
    const most = scored.slice(0, top);
    const least = scored.slice(Math.max(most.length, scored.length - top)).reverse();
    process.stdout.write(`\nmost memorable (by this model):\n${table(most)}\n`);
    if (least.length > 0) process.stdout.write(`least memorable:\n${table(least)}\n`);
    const failed = rows.filter((r) => r.status === "error");
    if (failed.length > 0) {
      process.stdout.write(
        `could not score ${failed.length}:\n${failed.map((r) => `  [${r.error_reason}] ${name(r.uri)}`).join("\n")}\n`,
      );
    }
    process.stdout.write(
      `\n${rows.length} images: ${scored.length} scored, ${failed.length} failed. ${copied} output files copied to ${outDir}\n` +
        `  per image: <name>.json (score, Grad-CAM grid, model, input)${config.heatmapFormat === "none" ? "" : ` and <name>${heatmapSuffix(config.heatmapFormat)}`}\n` +
        `  results table: ${join(outDir, "_runs", runId, "results.csv")} (also .jsonl, .parquet)\n` +
        `  report: ${reportPath}\n`,
    );
    return scored.length > 0 ? 0 : 1;
  } catch (error) {
    if (error instanceof MemscoreError) {
      say(`demo: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    await cleanup.runAll();
  }
}

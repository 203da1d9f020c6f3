import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import {
  ConfigError,
  formatS3Uri,
  MemscoreError,
  parseRunDirectory,
  parseS3Uri,
  RUN_ID_PATTERN,
  resolveConfig,
  Storage,
} from "@memscore/shared";
import { buildRunReport, uploadRunReport } from "@memscore/shared/report";
import { integerFlag, parseCommandArgs, stringFlag } from "../args.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore report <s3://OUT/PREFIX/_runs/RUN_ID/> [--out FILE] [--top N] [--upload]
       memscore report --run RUN_ID --out-prefix s3://OUT/PREFIX/ [--out FILE] [--top N] [--upload]

Writes one self-contained HTML page about a completed run: images by status, errors by reason
with example URIs, the model (name, sha256, trained or not, licence), duration and throughput,
a histogram of scores, and the top and bottom N images with their heatmaps. It reads the run's
run.json and streams its results.jsonl, so memory stays flat however large the run.

options:
  --out FILE          where to write the page (default ./report.html)
  --top N             images in each of the top and bottom lists (default 24, at most 500)
  --upload            also write it next to the run's results tables (_runs/RUN_ID/report.html)
  --run RUN_ID        the run, with --out-prefix (instead of the run directory's URI)
  --out-prefix URI    the run's output prefix (the --out given to enqueue)

Exit code: 0; 1 when the run has no summary or results table (not completed) or S3 fails; 2 for
bad usage.`;

const MAX_TOP = 500;

function runFromArgs(positionals: string[], values: Record<string, unknown>) {
  const runFlag = stringFlag(values, "run");
  const prefixFlag = stringFlag(values, "out-prefix");
  if (positionals.length > 1) throw new UsageError(`expected one run directory, got ${positionals.length}`);
  const [dir] = positionals;
  if (dir !== undefined) {
    if (runFlag !== undefined || prefixFlag !== undefined)
      throw new UsageError("give either the run directory's URI or --run with --out-prefix, not both");
    const run = parseRunDirectory(dir);
    if (!run || !RUN_ID_PATTERN.test(run.runId))
      throw new UsageError(`"${dir}" is not a run directory: expected s3://OUT/PREFIX/_runs/RUN_ID/`);
    return run;
  }
  if (runFlag === undefined || prefixFlag === undefined)
    throw new UsageError(`give the run directory's URI, or --run RUN_ID with --out-prefix URI`, HELP);
  if (!RUN_ID_PATTERN.test(runFlag))
    throw new UsageError("--run: use 1 to 64 of letters, digits, '_', '.', '-'");
  const prefix = parseS3Uri(prefixFlag.endsWith("/") ? prefixFlag : `${prefixFlag}/`);
  return { outputPrefix: formatS3Uri(prefix), runId: runFlag };
}

export async function reportCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      out: { type: "string" },
      top: { type: "string" },
      upload: { type: "boolean" },
      run: { type: "string" },
      "out-prefix": { type: "string" },
    },
    HELP,
  );
  if (!parsed) return 0;
  let run: { outputPrefix: string; runId: string };
  try {
    run = runFromArgs(parsed.positionals, parsed.values);
  } catch (error) {
    // A malformed URI is a usage error too, said in one line.
    if (error instanceof MemscoreError && !(error instanceof ConfigError))
      throw new UsageError(error.message);
    throw error;
  }
  const top = integerFlag(parsed.values, "top", { min: 1, max: MAX_TOP }) ?? 24;
  const out = resolve(stringFlag(parsed.values, "out") ?? "report.html");

  const storage = Storage.fromConfig(resolveConfig(process.env));
  try {
    const report = await buildRunReport(storage, run, { top });
    try {
      await writeFile(out, report.html);
    } catch (error) {
      process.stderr.write(`memscore report: cannot write ${out}: ${(error as Error).message}\n`);
      return 1;
    }
    process.stdout.write(`report: ${out}\n`);
    if (parsed.values.upload === true) {
      const location = await uploadRunReport(storage, run, report.html);
      process.stdout.write(`uploaded: ${formatS3Uri(location)}\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof MemscoreError && !(error instanceof ConfigError)) {
      process.stderr.write(`memscore report: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    storage.close();
  }
}

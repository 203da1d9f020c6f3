import { ConfigError, MemscoreError } from "@memscore/shared";
import { demoCommand } from "./commands/demo.js";
import { enqueueCommand } from "./commands/enqueue.js";
import { modelCommand } from "./commands/model.js";
import { preprocessCommand } from "./commands/preprocess.js";
import { producerCommand } from "./commands/producer.js";
import { scheduleCommand } from "./commands/schedule.js";
import { scoreCommand } from "./commands/score.js";
import { statusCommand } from "./commands/status.js";
import { workerCommand } from "./commands/worker.js";
import { UsageError } from "./usage-error.js";

/** A CLI command: parses its own arguments and returns the process exit code. */
export type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  demo: {
    run: demoCommand,
    summary: "the whole pipeline on this machine, on sample images (starts what it needs)",
  },
  score: { run: scoreCommand, summary: "score local image files or directories (no queue)" },
  enqueue: { run: enqueueCommand, summary: "list an S3 prefix (or a manifest) and enqueue a scoring run" },
  worker: { run: workerCommand, summary: "pull chunk jobs, score images, write outputs to S3" },
  status: { run: statusCommand, summary: "show the queue, its workers and the runs in progress" },
  schedule: { run: scheduleCommand, summary: "add, list or remove scheduled rescans of an S3 prefix" },
  producer: { run: producerCommand, summary: "the producer service: run scheduled scans as enqueued runs" },
  preprocess: {
    run: preprocessCommand,
    summary: "write images' exact model input as PNGs, for training on the pixels the worker scores",
  },
  model: {
    run: modelCommand,
    summary: "import a published model's weights (resmem) as a memscore ONNX model",
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return [
    "usage: memscore <command> [options]",
    "",
    "commands:",
    ...lines,
    "",
    "Run `memscore <command> --help` for its options.",
  ].join("\n");
}

/** Runs the memscore CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`memscore: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof MemscoreError) {
      process.stderr.write(`memscore ${name}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

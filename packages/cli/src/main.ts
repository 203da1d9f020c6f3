import { ConfigError, MemscoreError } from "@memscore/shared";
import { UsageError } from "./usage-error.js";

/** A CLI command: parses its own arguments and returns the process exit code. */
export type Command = (args: string[]) => Promise<number>;

// Each command is loaded when it runs, so a process loads only what its command needs (the
// report process, whose peak memory is bounded, never loads the model runtime or the queue).
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  demo: {
    load: async () => (await import("./commands/demo.js")).demoCommand,
    summary: "the whole pipeline on this machine, on sample images (starts what it needs)",
  },
  score: {
    load: async () => (await import("./commands/score.js")).scoreCommand,
    summary: "score local image files or directories (no queue)",
  },
  enqueue: {
    load: async () => (await import("./commands/enqueue.js")).enqueueCommand,
    summary: "list an S3 prefix (or a manifest) and enqueue a scoring run",
  },
  worker: {
    load: async () => (await import("./commands/worker.js")).workerCommand,
    summary: "pull chunk jobs, score images, write outputs to S3",
  },
  status: {
    load: async () => (await import("./commands/status.js")).statusCommand,
    summary: "show the queue, its workers and the runs in progress",
  },
  schedule: {
    load: async () => (await import("./commands/schedule.js")).scheduleCommand,
    summary: "add, list or remove scheduled rescans of an S3 prefix",
  },
  producer: {
    load: async () => (await import("./commands/producer.js")).producerCommand,
    summary: "the producer service: run scheduled scans as enqueued runs",
  },
  report: {
    load: async () => (await import("./commands/report.js")).reportCommand,
    summary: "one self-contained HTML page about a completed run",
  },
  preprocess: {
    load: async () => (await import("./commands/preprocess.js")).preprocessCommand,
    summary: "write images' exact model input as PNGs, for training on the pixels the worker scores",
  },
  model: {
    load: async () => (await import("./commands/model.js")).modelCommand,
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
    return await (await command.load())(rest);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof MemscoreError) {
      const help = error instanceof UsageError && error.help ? `\n${error.help}\n` : "";
      process.stderr.write(`memscore ${name}: ${error.message}\n${help}`);
      return 2;
    }
    throw error;
  }
}

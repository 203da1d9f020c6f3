// Flags of the benchmark scripts. A bad flag or value is a usage message and exit 2, as for the
// CLI; --help prints the usage. The usage is the script's own header comment (its first comment
// block), so the one description of a benchmark's flags is the one at the top of its file.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { parseArgs } from "node:util";

/** The leading `//` comment block of the running script, without the comment markers. */
function usage() {
  const script = process.argv[1] ?? "";
  const lines = [];
  for (const line of readFileSync(script, "utf8").split("\n")) {
    if (line.startsWith("#!")) continue;
    if (!line.startsWith("//")) break;
    lines.push(line.replace(/^\/\/ ?/, ""));
  }
  return lines.join("\n");
}

/** Prints `message` and the usage to stderr, then exits 2. */
export function usageError(message) {
  console.error(`${basename(process.argv[1] ?? "bench")}: ${message}\n\n${usage()}`);
  process.exit(2);
}

/** parseArgs (strict, no positionals) with --help: `{ values }` as parseArgs returns it. */
export function benchArgs({ options }) {
  let values;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: "boolean", default: false } } }));
  } catch (error) {
    usageError(error.message);
  }
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }
  return { values };
}

/** A whole-number flag value, at least `min` (`--images 128`), or a usage message and exit 2. */
export function countFlag(flag, text, unit, min = 1) {
  const n = Number(text);
  if (text === undefined || text === "" || !Number.isInteger(n) || n < min) {
    usageError(`--${flag} takes a whole number of ${unit}, at least ${min}, not ${JSON.stringify(text)}`);
  }
  return n;
}

/** `--threads N` (ONNX Runtime intra-op threads), this machine's core count when not given. */
export function threadsFlag(text) {
  return text === undefined ? availableParallelism() : countFlag("threads", text, "threads");
}

/** A list of whole numbers (`--batch-sizes 1,8,16`), or a usage message and exit 2. */
export function countListFlag(flag, text, unit) {
  return text.split(",").map((part) => countFlag(flag, part.trim(), unit));
}

/** A positive number (`--seconds 1.5`), or a usage message and exit 2. */
export function positiveFlag(flag, text, unit) {
  const n = Number(text);
  if (text === undefined || text === "" || !Number.isFinite(n) || n <= 0) {
    usageError(`--${flag} takes a positive number of ${unit}, not ${JSON.stringify(text)}`);
  }
  return n;
}

/** `WIDTHxHEIGHT` in pixels (`--size 640x480`), or a usage message and exit 2. */
export function sizeFlag(flag, text) {
  const match = /^(\d+)x(\d+)$/.exec(text);
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  if (!match || width < 1 || height < 1)
    usageError(`--${flag} takes WIDTHxHEIGHT in pixels, not ${JSON.stringify(text)}`);
  return { width, height };
}

/** One of `choices`, or a usage message and exit 2. */
export function choiceFlag(flag, text, choices) {
  if (!choices.includes(text))
    usageError(`--${flag} takes one of ${choices.join(", ")}, not ${JSON.stringify(text)}`);
  return text;
}

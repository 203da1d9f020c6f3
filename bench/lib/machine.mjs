import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { availableParallelism, cpus, totalmem } from "node:os";
import { REPO_ROOT } from "./model-file.mjs";

const require = createRequire(import.meta.url);

/** The machine a benchmark ran on: enough to tell two result sets apart. */
export function describeMachine() {
  let ort = "unknown";
  let sharpVersion = "unknown";
  try {
    ort = require("onnxruntime-node/package.json").version;
  } catch {
    // reported as unknown
  }
  try {
    sharpVersion = require(require.resolve("sharp", { paths: [`${REPO_ROOT}/packages/worker`] })).versions
      .sharp;
  } catch {
    // reported as unknown
  }
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    onnxruntimeNode: ort,
    sharp: sharpVersion,
    loadAverage1m: loadAverage(),
  };
}

function loadAverage() {
  try {
    return Number(execFileSync("cat", ["/proc/loadavg"]).toString().split(" ")[0]);
  } catch {
    return null;
  }
}

/** One line per machine fact, for the human-readable header of a benchmark. */
export function printMachine(machine) {
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, ` +
      `onnxruntime-node ${machine.onnxruntimeNode}, sharp ${machine.sharp}, load avg ${machine.loadAverage1m}`,
  );
}

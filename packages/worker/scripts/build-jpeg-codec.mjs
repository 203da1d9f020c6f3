#!/usr/bin/env node
// Builds the worker's JPEG codec (native/jpeg-codec.c) into build/jpeg-codec.node: a Node-API
// addon over the system's libjpeg-turbo, compiled by the C compiler against Node's own headers.
// `npm run build` runs this. It needs a C compiler and libjpeg-turbo's headers (Debian and Ubuntu:
// `apt-get install gcc libjpeg-dev`; macOS: `brew install jpeg-turbo`). Without them it says so
// and exits 0: the worker then decodes and encodes every JPEG with sharp, which gives the same
// pixels at two to three times the CPU. `--require` makes a failed build exit 1 (container
// images); `--out FILE` writes the addon elsewhere (tests).
//
//   node packages/worker/scripts/build-jpeg-codec.mjs [--require] [--out FILE]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));
const source = join(root, "native", "jpeg-codec.c");
let values;
try {
  ({ values } = parseArgs({
    options: { require: { type: "boolean", default: false }, out: { type: "string" } },
  }));
} catch (error) {
  console.error(
    `${error.message}\nusage: node packages/worker/scripts/build-jpeg-codec.mjs [--require] [--out FILE]`,
  );
  process.exit(2);
}
const out = values.out ?? join(root, "build", "jpeg-codec.node");
const required = values.require;

// Official Node builds and Debian's nodejs both ship node_api.h under <prefix>/include/node.
const includeDirs = [join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node"];
const nodeInclude = includeDirs.find((dir) => existsSync(join(dir, "node_api.h")));

function fail(reason) {
  const message = `jpeg codec not built: ${reason}. JPEGs will be decoded and encoded by sharp (the same pixels, two to three times the CPU). Install a C compiler and libjpeg-turbo's headers (Debian/Ubuntu: apt-get install gcc libjpeg-dev), then npm run build.`;
  console.error(message);
  process.exit(required ? 1 : 0);
}

if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) process.exit(0);
if (!nodeInclude) fail(`Node's headers (node_api.h) are not in ${includeDirs.join(" or ")}`);
const cc = process.env.CC ?? "cc";
const brew =
  process.platform === "darwin"
    ? ["-I/opt/homebrew/opt/jpeg-turbo/include", "-L/opt/homebrew/opt/jpeg-turbo/lib"]
    : [];
const args = [
  "-O2",
  "-fPIC",
  "-shared",
  "-fvisibility=hidden",
  "-DNODE_GYP_MODULE_NAME=jpeg_codec",
  `-I${nodeInclude}`,
  ...brew,
  source,
  "-o",
  out,
  "-ljpeg",
  // Node-API's functions come from the node binary that loads the addon.
  ...(process.platform === "darwin" ? ["-undefined", "dynamic_lookup"] : []),
];
mkdirSync(dirname(out), { recursive: true });
try {
  execFileSync(cc, args, { stdio: ["ignore", "inherit", "pipe"] });
} catch (error) {
  const stderr = error.stderr?.toString().trim();
  fail(`${cc} failed${stderr ? `:\n${stderr}\n` : ` (${error.message})`}`);
}

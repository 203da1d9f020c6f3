#!/usr/bin/env node
// The `memscore` command as npm links it. This file is committed (not built) on purpose: `npm ci`
// links a workspace's bin only when its target exists, and dist/ does not exist until
// `npm run build`, so a bin pointing into dist/ left `npx memscore` missing on every fresh clone.
//
// It is CommonJS for a second reason: libuv's thread pool, which runs every decode, resize and
// encode (sharp) and every deflate of all pipeline threads, is sized once, when first used, and
// an ES module entry already uses it while loading. Here it is sized first, to the cores.
"use strict";
const { existsSync } = require("node:fs");
const { availableParallelism } = require("node:os");
const { join } = require("node:path");
const { pathToFileURL } = require("node:url");

if (!process.env.UV_THREADPOOL_SIZE)
  process.env.UV_THREADPOOL_SIZE = String(Math.max(4, availableParallelism()));

const built = join(__dirname, "..", "dist", "bin.js");
if (!existsSync(built)) {
  process.stderr.write(
    `memscore: the CLI is not built yet (${built} is missing).\n` +
      `Run \`npm run build\` in ${join(__dirname, "..", "..", "..")} first.\n`,
  );
  process.exit(1);
}
import(pathToFileURL(built).href);

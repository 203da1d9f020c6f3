#!/usr/bin/env node
// The `memscore` command as npm links it. This file is committed (not built) on purpose: `npm ci`
// links a workspace's bin only when its target exists, and dist/ does not exist until
// `npm run build`, so a bin pointing into dist/ left `npx memscore` missing on every fresh clone.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const built = new URL("../dist/bin.js", import.meta.url);
if (!existsSync(built)) {
  const root = fileURLToPath(new URL("../../..", import.meta.url));
  process.stderr.write(
    `memscore: the CLI is not built yet (${fileURLToPath(built)} is missing).\n` +
      `Run \`npm run build\` in ${root} first.\n`,
  );
  process.exit(1);
}
await import(built.href);

#!/usr/bin/env node
// Installs ONNX Runtime's CUDA execution provider for onnxruntime-node from the npm registry
// alone: onnxruntime-node's own install step downloads it from NuGet, which air-gapped clusters
// that mirror only npm (and our CI) cannot reach.
//
//   npm run gpu:install [-- --dest DIR] [--cache DIR] [--check]
//
// 1. Fetches the pinned package (cuda-provider.lock.json) with `npm pack`, so the npm registry
//    configuration (.npmrc registry, proxy, auth) applies, into --cache (default: a temporary
//    folder, removed afterwards). A tarball already in --cache is used as is: copy it there for
//    a machine without registry access.
// 2. Refuses a tarball whose sha256 differs from the pinned one, then each library inside it
//    whose sha256 differs; nothing is placed unless every hash matches.
// 3. Checks that onnxruntime-node and its core library are the ONNX Runtime version the
//    providers were built for (core and providers must match).
// 4. Places libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so next to
//    onnxruntime-node's core library (bin/napi-v6/linux/x64/, where the core looks for
//    providers), or into --dest, each through a temporary file and a rename.
// --check only verifies the placed files (exit 1 naming any missing or altered one).
// The TensorRT provider in the same package is left out: it needs TensorRT 10 as well.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const LOCK_PATH = join(HERE, "cuda-provider.lock.json");
const USAGE = "usage: npm run gpu:install [-- --dest DIR] [--cache DIR] [--check]";

/** A refusal the user must act on: printed as one line, exit 1. */
class InstallError extends Error {}

async function sha256(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

/** Whether a library holds `version` as a NUL-terminated string (ONNX Runtime's ORT_VERSION). */
async function holdsVersionString(path, version) {
  const needle = Buffer.from(`\0${version}\0`);
  return (await readFile(path)).includes(needle);
}

/** onnxruntime-node as the worker resolves it: its version and the folder of its core library. */
function onnxruntimeNode() {
  const require = createRequire(join(ROOT, "packages", "worker", "package.json"));
  const manifest = require.resolve("onnxruntime-node/package.json");
  const { version } = JSON.parse(readFileSync(manifest, "utf8"));
  const binDir = join(dirname(manifest), "bin", "napi-v6", process.platform, process.arch);
  return { version, binDir, core: join(binDir, "libonnxruntime.so.1") };
}

/** Each pinned library in `dir`: ok, missing, or altered (with the sha256 found). */
async function verifyPlaced(lock, dir) {
  const results = [];
  for (const [name, { sha256: want }] of Object.entries(lock.libraries)) {
    const path = join(dir, name);
    if (!existsSync(path)) results.push({ name, path, state: "missing" });
    else {
      const got = await sha256(path);
      results.push({ name, path, state: got === want ? "ok" : "altered", got, want });
    }
  }
  return results;
}

function describe(result) {
  if (result.state === "ok") return `${result.path}: sha256 ${result.want} (pinned) ok`;
  if (result.state === "missing") return `${result.path}: missing`;
  return `${result.path}: sha256 ${result.got}, pinned ${result.want}: altered`;
}

async function checkCoreVersion(lock) {
  const ort = onnxruntimeNode();
  if (ort.version !== lock.onnxruntimeVersion) {
    throw new InstallError(
      `onnxruntime-node ${ort.version} is installed, but the CUDA provider is ONNX Runtime ${lock.onnxruntimeVersion}: ` +
        `pin onnxruntime-node to ${lock.onnxruntimeVersion} (core and providers must be the same version)`,
    );
  }
  if (!existsSync(ort.core) || !(await holdsVersionString(ort.core, lock.onnxruntimeVersion))) {
    throw new InstallError(
      `${ort.core} is not ONNX Runtime ${lock.onnxruntimeVersion} (no such version string in it): reinstall onnxruntime-node`,
    );
  }
  return ort;
}

/** The pinned tarball in `cache`, fetched with `npm pack` when it is not there yet. */
function fetchTarball(lock, cache) {
  const file = join(cache, `${lock.package}-${lock.version}.tgz`);
  if (existsSync(file)) {
    console.log(`using ${file}`);
    return file;
  }
  const spec = `${lock.package}@${lock.version}`;
  console.log(`fetching ${spec} from the npm registry (about 180 MB) ...`);
  const npm = spawnSync("npm", ["pack", spec, "--pack-destination", cache, "--silent"], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (npm.status !== 0 || !existsSync(file)) {
    throw new InstallError(
      `npm pack ${spec} failed (exit ${npm.status ?? npm.signal}); nothing was installed`,
    );
  }
  return file;
}

async function install(lock, dest, cacheOption) {
  const ort = await checkCoreVersion(lock);
  const target = dest ?? ort.binDir;
  const before = await verifyPlaced(lock, target);
  if (before.every((r) => r.state === "ok")) {
    for (const r of before) console.log(describe(r));
    console.log(`CUDA provider ${lock.onnxruntimeVersion} already installed and verified in ${target}`);
    return;
  }
  const cache = cacheOption ?? (await mkdtemp(join(tmpdir(), "memscore-cuda-provider-")));
  const work = await mkdtemp(join(tmpdir(), "memscore-cuda-provider-x-"));
  try {
    await mkdir(cache, { recursive: true });
    const tarball = fetchTarball(lock, cache);
    const tarballHash = await sha256(tarball);
    if (tarballHash !== lock.tarballSha256) {
      throw new InstallError(
        `refused ${tarball}: sha256 ${tarballHash}, pinned ${lock.tarballSha256} (${relative(ROOT, LOCK_PATH)}); nothing was installed`,
      );
    }
    const entries = Object.values(lock.libraries).map((l) => l.pathInTarball);
    const tar = spawnSync("tar", ["-xzf", tarball, "-C", work, ...entries], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    if (tar.status !== 0)
      throw new InstallError(`tar could not extract ${entries.join(", ")} from ${tarball}`);
    for (const [name, { pathInTarball, sha256: want }] of Object.entries(lock.libraries)) {
      const got = await sha256(join(work, pathInTarball));
      if (got !== want) {
        throw new InstallError(
          `refused ${name} from ${tarball}: sha256 ${got}, pinned ${want}; nothing was installed`,
        );
      }
    }
    const cudaProvider = join(work, lock.libraries["libonnxruntime_providers_cuda.so"].pathInTarball);
    if (!(await holdsVersionString(cudaProvider, lock.onnxruntimeVersion))) {
      throw new InstallError(
        `the CUDA provider in ${tarball} is not ONNX Runtime ${lock.onnxruntimeVersion}`,
      );
    }
    await mkdir(target, { recursive: true });
    for (const [name, { pathInTarball }] of Object.entries(lock.libraries)) {
      // A rename never leaves a half-written library where ONNX Runtime would load it.
      const temporary = join(target, `.${name}.${process.pid}.tmp`);
      await copyFile(join(work, pathInTarball), temporary);
      await chmod(temporary, 0o755);
      await rename(temporary, join(target, name));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
    if (!cacheOption) await rm(cache, { recursive: true, force: true });
  }
  const after = await verifyPlaced(lock, target);
  for (const r of after) console.log(describe(r));
  if (!after.every((r) => r.state === "ok"))
    throw new InstallError(`verification after placing failed in ${target}`);
  console.log(`installed the CUDA provider of ONNX Runtime ${lock.onnxruntimeVersion} in ${target}`);
}

async function check(lock, dest) {
  const target = dest ?? (await checkCoreVersion(lock)).binDir;
  const results = await verifyPlaced(lock, target);
  for (const r of results) console.log(describe(r));
  const bad = results.filter((r) => r.state !== "ok");
  if (bad.length > 0) {
    throw new InstallError(
      `${bad.map((r) => `${r.name} ${r.state}`).join(", ")} in ${target}: run npm run gpu:install`,
    );
  }
}

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        dest: { type: "string" },
        cache: { type: "string" },
        check: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`gpu:install: ${error.message.split("\n")[0]} (${USAGE})`);
    process.exit(2);
  }
  const lock = JSON.parse(readFileSync(LOCK_PATH, "utf8"));
  if (`${process.platform}/${process.arch}` !== lock.platform) {
    throw new InstallError(
      `the CUDA provider build is for ${lock.platform}, this is ${process.platform}/${process.arch}`,
    );
  }
  if (values.check) await check(lock, values.dest);
  else await install(lock, values.dest, values.cache);
}

main().catch((error) => {
  console.error(error instanceof InstallError ? `gpu:install: ${error.message}` : error);
  process.exit(1);
});

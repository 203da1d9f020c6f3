// Runs the local S3 API server (s3rver) in processes of its own, so serving GETs and PUTs does
// not share the benchmarked worker's event loop (real S3 is on other machines). Prints one JSON
// line {endpoint, pids} when ready; stops when its stdin closes (the parent exiting included).
//
//   node bench/lib/s3-server-child.mjs PROCESSES BUCKET...
//
// One s3rver process serves every request on one JavaScript thread (about 4 CPU-ms per scored
// image on the 2-core machine), so on a many-core machine it, not the worker, would set the
// pace. With PROCESSES > 1 this process forks that many s3rver processes (node:cluster) over one
// store directory and one port; the cluster primary hands each new connection to the next one.
import cluster from "node:cluster";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalS3 } from "@memscore/cli";

function stopOnStdinEnd(stop) {
  process.stdin.resume();
  process.stdin.on("end", async () => {
    await stop();
    process.exit(0);
  });
}

if (cluster.isWorker) {
  // A forked server: its store directory and buckets come from the primary.
  const [dir, ...buckets] = JSON.parse(process.env.BENCH_S3_SERVE);
  const s3 = await startLocalS3({ dir, buckets });
  process.send({ port: s3.port });
  process.on("message", async (message) => {
    if (message === "stop") {
      await s3.stop();
      process.exit(0);
    }
  });
  // The primary gone (killed rather than stopped): nobody can reach this server any more.
  process.on("disconnect", () => process.exit(0));
} else {
  const [count, ...buckets] = process.argv.slice(2);
  const processes = Number(count);
  if (!Number.isInteger(processes) || processes < 1) {
    console.error(
      `usage: s3-server-child.mjs PROCESSES BUCKET...; PROCESSES must be a whole number ≥ 1, not ${count}`,
    );
    process.exit(2);
  }
  if (processes === 1) {
    const s3 = await startLocalS3({ buckets });
    process.stdout.write(`${JSON.stringify({ endpoint: s3.endpoint, pids: [process.pid] })}\n`);
    stopOnStdinEnd(() => s3.stop());
  } else {
    const dir = await mkdtemp(join(tmpdir(), "memscore-s3-"));
    // Each server creates the buckets as it starts (mkdir -p: the same directories, no race).
    const env = { BENCH_S3_SERVE: JSON.stringify([dir, ...buckets]) };
    const servers = Array.from({ length: processes }, () => cluster.fork(env));
    // Workers that listen on port 0 share one port chosen by the primary.
    const ports = await Promise.all(
      servers.map((server) => new Promise((resolve) => server.once("message", (m) => resolve(m.port)))),
    );
    process.stdout.write(
      `${JSON.stringify({ endpoint: `http://127.0.0.1:${ports[0]}`, pids: [process.pid, ...servers.map((s) => s.process.pid)] })}\n`,
    );
    stopOnStdinEnd(async () => {
      await Promise.all(
        servers.map((server) => {
          const exited = new Promise((resolve) => server.once("exit", resolve));
          server.send("stop");
          return exited;
        }),
      );
      await rm(dir, { recursive: true, force: true });
    });
  }
}

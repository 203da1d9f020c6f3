// Runs the local S3 API server (s3rver) in its own process, so serving GETs and PUTs does not
// share the benchmarked worker's event loop (real S3 is on other machines). Prints one JSON
// line {endpoint} when ready; stops when its stdin closes (the parent exiting included).
import { startLocalS3 } from "@memscore/cli";

const s3 = await startLocalS3({ buckets: process.argv.slice(2) });
process.stdout.write(`${JSON.stringify({ endpoint: s3.endpoint })}\n`);
process.stdin.resume();
process.stdin.on("end", async () => {
  await s3.stop();
  process.exit(0);
});

// `node complete-run.mjs QUEUE RUN_ID`: completes a run (merges its parts into the results tables
// and writes run.json) in a process of its own, so a test can measure that step's memory alone.
// Redis and S3 come from the environment (REDIS_URL, S3_ENDPOINT, AWS_*).
import {
  completeRun,
  createRedisConnection,
  RunState,
  resolveConfig,
  Storage,
  silentLogger,
} from "@memscore/shared";

const [queue, runId] = process.argv.slice(2);
const config = resolveConfig(process.env);
const redis = createRedisConnection(config.redisUrl, { name: "complete-run" });
const storage = Storage.fromConfig(config);
try {
  await completeRun(storage, new RunState(redis, queue, runId), silentLogger);
} finally {
  storage.close();
  await redis.quit();
}

import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import type { LocalRedisOptions } from "@memscore/cli";
import { testS3Client } from "./s3.js";
import { startTestServices, type TestServices, uniqueName } from "./services.js";

/** Private services, the env that points memscore processes at them, and a client with buckets made. */
export interface RunFixture {
  services: TestServices;
  /** Services' env plus a unique MEMSCORE_QUEUE, one ONNX thread per worker and `extraEnv`. */
  env: NodeJS.ProcessEnv;
  s3: S3Client;
  /** Closes the client and stops the services. */
  stop(): Promise<void>;
}

/**
 * The set-up every run-level test shares: start Redis (optionally configured) and the S3 API
 * server, make `buckets`, and build the env for worker and producer processes.
 */
export async function startRunFixture(options: {
  buckets: readonly string[];
  redis?: LocalRedisOptions;
  extraEnv?: NodeJS.ProcessEnv;
}): Promise<RunFixture> {
  const services = await startTestServices(options.redis);
  const env: NodeJS.ProcessEnv = {
    ...services.env,
    MEMSCORE_QUEUE: uniqueName("q"),
    MEMSCORE_INTRA_OP_THREADS: "1",
    ...options.extraEnv,
  };
  const s3 = testS3Client(env);
  try {
    for (const bucket of options.buckets) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    s3.destroy();
    await services.stop();
    throw error;
  }
  return {
    services,
    env,
    s3,
    stop: async () => {
      s3.destroy();
      await services.stop();
    },
  };
}

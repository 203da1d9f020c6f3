import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeArchive } from "../support/archive.js";
import {
  type CliProcess,
  metricsPortOf,
  startWorkerProcess,
  stopProcesses,
  waitForOutput,
} from "../support/cli.js";
import { enqueueAndWait, readResults } from "../support/run-outcome.js";
import { getBytes, listKeys, putObjects, testS3Client } from "../support/s3.js";
import { startTestServices, type TestServices, uniqueName } from "../support/services.js";
import { budget, RUN_TIMEOUT_MS } from "../support/timeouts.js";
import { makeTestCertificates } from "../support/tls-certs.js";

const IMAGES = 24;
const ACCESS_KEY_ID = "AKIAMEMSCORETEST0001";

/** Registers a key pair with the in-process s3rver (it only knows S3RVER/S3RVER otherwise). */
function registerS3Key(accessKeyId: string, secretAccessKey: string): void {
  const require = createRequire(import.meta.url);
  const account = require("s3rver/lib/models/account.js") as {
    DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void };
  };
  account.DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
}

// Redis behind TLS with a password, S3 credentials from the standard AWS chain, and no secret
// anywhere a user or operator can read: logs, output objects, results, /metrics.
describe("Redis TLS + password, S3 credentials chain, no secret leaks", () => {
  let services: TestServices;
  let dir: string;
  let s3: S3Client;
  let base: NodeJS.ProcessEnv;
  const workers: CliProcess[] = [];
  /** What else a user or operator can read: the enqueue processes' stderr and /metrics. */
  const seen: string[] = [];
  const redisPassword = `redis-pw-${randomUUID()}`;
  const wrongPassword = `wrong-pw-${randomUUID()}`;
  const s3Secret = `s3-secret-${randomUUID()}`;
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "memscore-secrets-"));
    const certs = await makeTestCertificates(dir);
    services = await startTestServices({ password: redisPassword, tls: certs });
    registerS3Key(ACCESS_KEY_ID, s3Secret);
    s3 = testS3Client(services.env, { accessKeyId: ACCESS_KEY_ID, secretAccessKey: s3Secret });
    await s3.send(new CreateBucketCommand({ Bucket: input }));
    await s3.send(new CreateBucketCommand({ Bucket: output }));
    const archive = await makeArchive("photos/", IMAGES); // includes broken images: error records too
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    // No default S3RVER keys anywhere: each process must find the test's key through the chain.
    base = {
      REDIS_URL: services.redis.url,
      S3_ENDPOINT: services.s3.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_PROFILE: undefined,
      AWS_CONFIG_FILE: join(dir, "no-aws-config"),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, "no-aws-credentials"),
      AWS_EC2_METADATA_DISABLED: "true",
      NODE_EXTRA_CA_CERTS: certs.caFile,
      MEMSCORE_QUEUE: uniqueName("q"),
      MEMSCORE_INTRA_OP_THREADS: "1",
      MEMSCORE_LOG_LEVEL: "debug", // the most a process ever says
    };
  });

  afterAll(async () => {
    await stopProcesses(workers);
    s3?.destroy();
    await services?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const fromEnvVars = () => ({ ...base, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: s3Secret });

  const startWorker = (env: NodeJS.ProcessEnv) => {
    const worker = startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "8"]);
    workers.push(worker);
    return worker;
  };

  it(
    "runs over rediss:// with a password, with S3 keys from env vars and then from a credentials file",
    async () => {
      expect(services.redis.url).toMatch(/^rediss:\/\//);
      const byEnv = startWorker(fromEnvVars());
      const metricsPort = await metricsPortOf(byEnv);
      const first = await enqueueAndWait(
        fromEnvVars(),
        [`s3://${input}/photos/`],
        `s3://${output}/env/`,
        "env-run",
      );
      seen.push(first.stderr);
      expect(first.code, `${first.stderr}\n${byEnv.tail()}`).toBe(0);
      expect(
        (await readResults(s3, output, "env/", "env-run")).filter((r) => r.status === "scored").length,
      ).toBe(IMAGES - 4);
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(metrics.status).toBe(200);
      seen.push(await metrics.text());
      await stopProcesses([byEnv]);

      // The shared credentials file (AWS_SHARED_CREDENTIALS_FILE + AWS_PROFILE), no key in the env.
      const credentials = join(dir, "credentials");
      await writeFile(
        credentials,
        `[memscore-test]\naws_access_key_id = ${ACCESS_KEY_ID}\naws_secret_access_key = ${s3Secret}\n`,
      );
      const fromFile = { ...base, AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_PROFILE: "memscore-test" };
      const byFile = startWorker(fromFile);
      const second = await enqueueAndWait(
        fromFile,
        [`s3://${input}/photos/`],
        `s3://${output}/file/`,
        "file-run",
      );
      seen.push(second.stderr);
      expect(second.code, `${second.stderr}\n${byFile.tail()}`).toBe(0);
      expect(
        (await readResults(s3, output, "file/", "file-run")).filter((r) => r.status === "scored").length,
      ).toBe(IMAGES - 4);
      await stopProcesses([byFile]);
    },
    budget(RUN_TIMEOUT_MS, RUN_TIMEOUT_MS),
  );

  it("says why it cannot connect with a wrong password, without printing either password", async () => {
    const url = new URL(services.redis.url);
    url.password = wrongPassword;
    const worker = startWorker({ ...fromEnvVars(), REDIS_URL: url.toString() });
    await waitForOutput(worker, /WRONGPASS|NOAUTH/);
    await stopProcesses([worker], 5_000);
  });

  it("leaves no secret in logs, /metrics, output objects or results tables", async () => {
    // Every line each worker wrote at debug level, the enqueue processes' stderr, /metrics.
    const text = [...workers.map((w) => w.output()), ...seen].join("");
    expect(text.length).toBeGreaterThan(1000); // there was plenty to leak into
    for (const secret of [redisPassword, wrongPassword, s3Secret]) {
      expect(text.includes(secret), "a secret in logs or /metrics").toBe(false);
    }
    const keys = await listKeys(s3, output);
    expect(keys.length).toBeGreaterThan(IMAGES * 2);
    for (const key of keys) {
      const body = (await getBytes(s3, output, key)).toString("latin1");
      for (const secret of [redisPassword, s3Secret]) expect(body.includes(secret), key).toBe(false);
    }
  });
});

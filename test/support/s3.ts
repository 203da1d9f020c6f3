import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { resolveConfig, Storage } from "@memscore/shared";

/**
 * The one plain SDK client of the tests, for set-up and inspection: pointed at `env.S3_ENDPOINT`
 * with the keys of `env` (or `credentials`), with the options the storage layer uses against
 * S3-compatible servers (path style, checksums only when required).
 */
export function testS3Client(
  env: NodeJS.ProcessEnv,
  credentials: { accessKeyId: string; secretAccessKey: string } = {
    accessKeyId: env.AWS_ACCESS_KEY_ID as string,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string,
  },
): S3Client {
  return new S3Client({
    endpoint: env.S3_ENDPOINT as string,
    region: "us-east-1",
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/**
 * memscore's own Storage for the test services (as a producer or worker builds it from `env`),
 * optionally restricted to some buckets. Close it with `close()`.
 */
export function testStorage(env: NodeJS.ProcessEnv, allowedBuckets: readonly string[] = []): Storage {
  // The AWS SDK reads credentials from process.env only; this test process talks to s3rver alone.
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
  return Storage.fromConfig(resolveConfig({ ...env, MEMSCORE_ALLOWED_BUCKETS: allowedBuckets.join(",") }));
}

export async function putObjects(
  client: S3Client,
  bucket: string,
  objects: ReadonlyMap<string, Buffer | string>,
  concurrency = 16,
): Promise<void> {
  const entries = [...objects];
  const run = async () => {
    for (let next = entries.shift(); next; next = entries.shift()) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: next[0], Body: next[1] }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, run));
}

export async function listKeys(client: S3Client, bucket: string, prefix = ""): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        ...(token && { ContinuationToken: token }),
      }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

export async function getBytes(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(
    await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
  );
}

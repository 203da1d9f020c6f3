import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

/** A plain SDK client for test set-up and inspection, pointed at the test S3 server. */
export function testS3Client(env: NodeJS.ProcessEnv): S3Client {
  return new S3Client({
    endpoint: env.S3_ENDPOINT as string,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: env.AWS_ACCESS_KEY_ID as string,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string,
    },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
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

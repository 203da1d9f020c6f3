import { createHash } from "node:crypto";
import { connect } from "node:net";
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import {
  LOCAL_S3_ACCESS_KEY_ID,
  LOCAL_S3_SECRET_ACCESS_KEY,
  type LocalRedis,
  type LocalS3,
  startLocalRedis,
  startLocalS3,
} from "@memscore/cli";
import { MemscoreError } from "@memscore/shared";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testS3Client } from "../../../test/support/s3.js";
import { sleepUntil, uniqueName } from "../../../test/support/services.js";

/** The tests' client, with the options the storage layer must use against s3rver. */
function localClient(endpoint: string, accessKeyId = LOCAL_S3_ACCESS_KEY_ID): S3Client {
  return testS3Client(
    { S3_ENDPOINT: endpoint },
    { accessKeyId, secretAccessKey: LOCAL_S3_SECRET_ACCESS_KEY },
  );
}

/** Resolves to the S3 error the promise rejected with (fails the test if it resolved). */
async function s3Failure(promise: Promise<unknown>): Promise<S3ServiceException> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(S3ServiceException);
  return error as S3ServiceException;
}

function portAcceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("local S3 (s3rver) with AWS SDK v3", () => {
  let s3: LocalS3;
  let client: S3Client;
  const bucket = uniqueName("local-s3-test");

  beforeAll(async () => {
    s3 = await startLocalS3({ buckets: [bucket] });
    client = localClient(s3.endpoint);
  });
  afterAll(async () => {
    client?.destroy();
    await s3?.stop();
    await s3?.stop(); // idempotent
  });

  const put = (Key: string, Body: string | Uint8Array) =>
    client.send(new PutObjectCommand({ Bucket: bucket, Key, Body }));
  const getText = async (Key: string) => {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key }));
    return out.Body!.transformToString();
  };

  it("creates buckets through the API and through createBucket()", async () => {
    const viaApi = uniqueName("via-api");
    const viaStore = uniqueName("via-store");
    await client.send(new CreateBucketCommand({ Bucket: viaApi }));
    await s3.createBucket(viaStore);
    for (const name of [viaApi, viaStore, bucket]) {
      const head = await client.send(new HeadBucketCommand({ Bucket: name }));
      expect(head.$metadata.httpStatusCode).toBe(200);
    }
  });

  it("round-trips bytes, ETag, length and user metadata", async () => {
    const body = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));
    const md5 = createHash("md5").update(body).digest("hex");
    const put = await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: "meta/object.bin",
        Body: body,
        ContentType: "image/jpeg",
        Metadata: { "Model-Sha256": "abc123", "input-etag": '"quoted"' },
      }),
    );
    // ETag is the quoted hex MD5, like AWS for single-part uploads.
    expect(put.ETag).toBe(`"${md5}"`);

    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: "meta/object.bin" }));
    expect(head.ETag).toBe(`"${md5}"`);
    expect(head.ContentLength).toBe(body.length);
    expect(head.ContentType).toBe("image/jpeg");
    // Metadata keys come back lower-cased, without the x-amz-meta- prefix.
    expect(head.Metadata).toEqual({ "model-sha256": "abc123", "input-etag": '"quoted"' });

    const get = await client.send(new GetObjectCommand({ Bucket: bucket, Key: "meta/object.bin" }));
    expect(Buffer.from(await get.Body!.transformToByteArray())).toEqual(body);
    expect(get.ETag).toBe(`"${md5}"`);
    expect(get.Metadata).toEqual(head.Metadata);
  });

  it("round-trips keys with spaces, unicode and URL-special characters exactly", async () => {
    const prefix = "special/";
    const names = [
      "a b.jpg",
      "café/日本.jpg",
      "a+b.jpg",
      "100%.jpg",
      "x#y.jpg",
      "q?x=1&y=2.jpg",
      "t~!*'()$,;@.jpg",
    ];
    const keys = names.map((name) => prefix + name);
    for (const key of keys) await put(key, `body of ${key}`);
    for (const key of keys) expect(await getText(key)).toBe(`body of ${key}`);

    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    expect(listed.Contents?.map((c) => c.Key).sort()).toEqual([...keys].sort());
  });

  it("paginates ListObjectsV2 with MaxKeys and ContinuationToken, and honours StartAfter", async () => {
    const prefix = "page/";
    const keys = Array.from({ length: 7 }, (_, i) => `${prefix}img-${i}.jpg`);
    for (const key of keys) await put(key, key);

    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 2, ContinuationToken: token }),
      );
      pages += 1;
      expect(page.KeyCount).toBe(page.Contents?.length ?? 0);
      seen.push(...(page.Contents ?? []).map((c) => c.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated) expect(token).toBeTruthy();
    } while (token);
    expect(pages).toBe(4);
    expect(seen).toEqual(keys);

    const after = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, StartAfter: `${prefix}img-4.jpg` }),
    );
    expect(after.Contents?.map((c) => c.Key)).toEqual([`${prefix}img-5.jpg`, `${prefix}img-6.jpg`]);
  });

  it("serves ranged GETs", async () => {
    await put("range.txt", "0123456789abcdefghij");
    const out = await client.send(
      new GetObjectCommand({ Bucket: bucket, Key: "range.txt", Range: "bytes=0-9" }),
    );
    expect(out.$metadata.httpStatusCode).toBe(206);
    expect(out.ContentRange).toBe("bytes 0-9/20");
    expect(out.ContentLength).toBe(10);
    expect(await out.Body!.transformToString()).toBe("0123456789");
  });

  it("reports missing keys, missing buckets and unknown access keys with S3 error names", async () => {
    const missingKey = await s3Failure(
      client.send(new GetObjectCommand({ Bucket: bucket, Key: "nope.jpg" })),
    );
    expect([missingKey.name, missingKey.$metadata.httpStatusCode]).toEqual(["NoSuchKey", 404]);

    const missingBucket = await s3Failure(
      client.send(new GetObjectCommand({ Bucket: uniqueName("missing"), Key: "a.jpg" })),
    );
    expect([missingBucket.name, missingBucket.$metadata.httpStatusCode]).toEqual(["NoSuchBucket", 404]);

    // HEAD responses have no body, so the SDK can only say "NotFound".
    const missingHead = await s3Failure(
      client.send(new HeadObjectCommand({ Bucket: bucket, Key: "nope.jpg" })),
    );
    expect([missingHead.name, missingHead.$metadata.httpStatusCode]).toEqual(["NotFound", 404]);

    const stranger = localClient(s3.endpoint, "NOT-A-KEY");
    const denied = await s3Failure(stranger.send(new GetObjectCommand({ Bucket: bucket, Key: "range.txt" })));
    stranger.destroy();
    expect([denied.name, denied.$metadata.httpStatusCode]).toEqual(["InvalidAccessKeyId", 403]);
  });

  it("rejects aws-chunked streaming uploads loudly instead of storing them corrupted", async () => {
    // The SDK's default (WHEN_SUPPORTED) sends stream bodies aws-chunked with a CRC32 trailer.
    const { Readable } = await import("node:stream");
    const defaultClient = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: LOCAL_S3_ACCESS_KEY_ID, secretAccessKey: LOCAL_S3_SECRET_ACCESS_KEY },
    });
    const body = Readable.from([Buffer.from("hello")]);
    const error = await s3Failure(
      defaultClient.send(
        new PutObjectCommand({ Bucket: bucket, Key: "chunked.txt", Body: body, ContentLength: 5 }),
      ),
    );
    defaultClient.destroy();
    expect(error.name).toBe("NotImplemented");

    // The same stream upload works with requestChecksumCalculation: "WHEN_REQUIRED".
    const stream = Readable.from([Buffer.from("hello")]);
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: "stream.txt", Body: stream, ContentLength: 5 }),
    );
    expect(await getText("stream.txt")).toBe("hello");
  });

  it("stops: the port refuses connections afterwards", async () => {
    const other = await startLocalS3();
    expect(await portAcceptsConnections(other.port)).toBe(true);
    await other.stop();
    expect(await portAcceptsConnections(other.port)).toBe(false);
  });
});

describe("local Redis (redis-server)", () => {
  const started: LocalRedis[] = [];
  const clients: Redis[] = [];
  const start = async (options?: Parameters<typeof startLocalRedis>[0]) => {
    const redis = await startLocalRedis(options);
    started.push(redis);
    return redis;
  };
  const client = (url: string) => {
    // Fail fast instead of queueing commands forever while the server is down.
    const c = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50, lazyConnect: true });
    c.on("error", () => {}); // failures are asserted on the commands; keep the event quiet
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(started.map((r) => r.stop()));
  });

  it("accepts connections (PING → PONG) and survives restart() on the same port", async () => {
    const redis = await start();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const c = client(redis.url);
    expect(await c.ping()).toBe("PONG");
    await c.set("k", "v");

    const pidBefore = redis.pid();
    await redis.restart();
    expect(redis.pid()).toBeDefined();
    expect(redis.pid()).not.toBe(pidBefore);
    // The same client reconnects to the same port; data is gone (no persistence by design).
    await sleepUntil(async () => (await c.ping()) === "PONG", {
      what: "the client to reconnect to the restarted server",
      timeoutMs: 10_000,
    });
    expect(await c.get("k")).toBeNull();
  });

  it("requires the password when one is set", async () => {
    const password = "s3cret/with:chars@";
    const redis = await start({ password });
    const anonymous = client(`redis://127.0.0.1:${redis.port}`);
    await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
    expect(await client(redis.url).ping()).toBe("PONG");
  });

  it("stop() ends the process and frees the port; it is idempotent", async () => {
    const redis = await start();
    const pid = redis.pid()!;
    await redis.stop();
    await redis.stop();
    expect(redis.pid()).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(await portAcceptsConnections(redis.port)).toBe(false);
  });

  it("fails with the server's own output when it cannot start", async () => {
    const redis = await start();
    const error = await startLocalRedis({ port: redis.port }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemscoreError);
    expect((error as Error).message).toMatch(/exited before it was ready[\s\S]*Address already in use/);
  });

  it("explains how to install redis-server when it is not on PATH", async () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const error = await startLocalRedis().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MemscoreError);
      expect((error as Error).message).toMatch(/apt-get install redis-server/);
      expect((error as Error).message).toMatch(/brew install redis/);
      expect((error as Error).message).toMatch(/REDIS_URL/);
    } finally {
      process.env.PATH = path;
    }
  });
});

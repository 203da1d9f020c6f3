import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { Readable } from "node:stream";
import { crc32 } from "node:zlib";
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { MemscoreConfig } from "./config.js";
import { ImageError, MemscoreError } from "./errors.js";
import { ObjectClient, S3HttpError } from "./object-client.js";
import { assertBucketAllowed, formatS3Uri, type S3Location } from "./s3-uri.js";

/** An object as listed: enough to enqueue it and to detect changes (ETag) without a HEAD. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** ETag without quotes. */
  etag: string;
}

/** A storage fault that may pass (5xx, throttling, timeouts, dropped connections): retry later. */
export class TransientStorageError extends MemscoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("storage_transient", message, options);
  }
}

const stripQuotes = (etag: string | undefined): string => (etag ?? "").replace(/^"|"$/g, "");

function statusOf(error: unknown): number | undefined {
  if (error instanceof S3HttpError) return error.status;
  return error instanceof S3ServiceException ? error.$metadata?.httpStatusCode : undefined;
}

/**
 * Sorts an S3 failure into what it means for one object: missing and forbidden are permanent
 * (an {@link ImageError}); everything else is transient and worth a retry.
 */
export function classifyStorageError(error: unknown, what: string): Error {
  if (error instanceof MemscoreError) return error;
  const status = statusOf(error);
  const name = error instanceof Error ? error.name : "";
  if (status === 404 || name === "NoSuchKey" || name === "NotFound" || name === "NoSuchBucket") {
    return new ImageError("not_found", `${what}: not found`, { cause: error });
  }
  if (status === 403 || name === "AccessDenied" || name === "Forbidden") {
    return new ImageError("forbidden", `${what}: access denied`, { cause: error });
  }
  const detail = error instanceof Error ? error.message.split("\n")[0] : String(error);
  return new TransientStorageError(`${what}: ${status ? `HTTP ${status} ` : ""}${detail}`, { cause: error });
}

/**
 * Whether PUT bodies go unsigned (`x-amz-content-sha256: UNSIGNED-PAYLOAD`), as the AWS SDKs for
 * Java and Go do over HTTPS: TLS protects them in transit and S3 checks each body against the
 * CRC32 every PUT carries, so SigV4's SHA-256 over the body (a second full pass) adds nothing.
 * Over plain HTTP (a local S3-compatible server) bodies stay signed.
 */
export function unsignedPayloadByDefault(endpoint: string): boolean {
  return endpoint === "" || endpoint.startsWith("https://");
}

/** Marks PutObject bodies unsigned before the request is signed (the signer keeps a preset hash). */
function addUnsignedPayload(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (context.commandName === "PutObjectCommand" && request.headers)
        request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
      return next(args);
    },
    { step: "build", name: "memscoreUnsignedPayload" },
  );
}

/** The CRC32 of a body as S3 expects it in `x-amz-checksum-crc32` (base64 of 4 big-endian bytes). */
function crc32Base64(body: Buffer | string): string {
  const value = Buffer.allocUnsafe(4);
  value.writeUInt32BE(crc32(body), 0);
  return value.toString("base64");
}

/** What a Storage needs of the config. */
export type StorageConfig = Pick<
  MemscoreConfig,
  "s3Endpoint" | "s3ForcePathStyle" | "awsRegion" | "s3RequestTimeoutMs" | "allowedBuckets"
>;

/** Creates the S3 client for a config: custom endpoint + path style for S3-compatible servers. */
export function createS3Client(
  config: Pick<MemscoreConfig, "s3Endpoint" | "s3ForcePathStyle" | "awsRegion" | "s3RequestTimeoutMs">,
  options: { unsignedPayload?: boolean } = {},
): S3Client {
  // Keep-alive sockets, bounded: a worker issues many small GET/PUTs in parallel.
  const agentOptions = { keepAlive: true, maxSockets: 64 };
  const client = new S3Client({
    region: config.awsRegion,
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
    forcePathStyle: config.s3ForcePathStyle,
    // S3-compatible servers (MinIO, s3rver, Ceph) often reject the SDK's default CRC32 trailers.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 4,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 5_000,
      // Abandon a request S3 has stopped answering (a TimeoutError: transient, retried). This
      // SDK's `requestTimeout` only logs a warning when exceeded (unless throwOnRequestTimeout).
      socketTimeout: config.s3RequestTimeoutMs,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
    }),
  });
  if (options.unsignedPayload ?? unsignedPayloadByDefault(config.s3Endpoint)) addUnsignedPayload(client);
  return client;
}

/**
 * The object store as memscore uses it: streamed listing, size-limited GET, PUT, HEAD. Every
 * call checks the bucket against the allow-list first, so no caller can forget to.
 */
export class Storage {
  /** The SDK client: listing, HEAD, multipart uploads and whatever else a caller needs. */
  readonly client: S3Client;
  /** Single-object GET and PUT, the hot path: straight over HTTP (object-client.ts). */
  private readonly objects: ObjectClient;
  private readonly allowedBuckets: readonly string[];

  /** `unsignedPayload` defaults to true over HTTPS ({@link unsignedPayloadByDefault}). */
  constructor(config: StorageConfig, options: { unsignedPayload?: boolean } = {}) {
    const unsignedPayload = options.unsignedPayload ?? unsignedPayloadByDefault(config.s3Endpoint);
    this.client = createS3Client(config, { unsignedPayload });
    this.objects = new ObjectClient(this.client, config.s3Endpoint, {
      requestTimeoutMs: config.s3RequestTimeoutMs,
      unsignedPayload,
    });
    this.allowedBuckets = config.allowedBuckets;
  }

  static fromConfig(config: StorageConfig): Storage {
    return new Storage(config);
  }

  assertAllowed(bucket: string): void {
    assertBucketAllowed(bucket, this.allowedBuckets);
  }

  /**
   * Lists objects under a prefix page by page. Only one page is held at a time, so memory stays
   * flat however many keys there are. `startAfter` resumes after a checkpointed key.
   */
  async *list(
    location: S3Location,
    options: { startAfter?: string; pageSize?: number } = {},
  ): AsyncGenerator<ObjectInfo> {
    this.assertAllowed(location.bucket);
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: location.bucket,
            Prefix: location.key,
            MaxKeys: options.pageSize ?? 1000,
            ...(token
              ? { ContinuationToken: token }
              : options.startAfter
                ? { StartAfter: options.startAfter }
                : {}),
          }),
        );
      } catch (error) {
        throw classifyStorageError(error, `list ${formatS3Uri(location)}`);
      }
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined) continue;
        yield { key: item.Key, size: item.Size ?? 0, etag: stripQuotes(item.ETag) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Reads an object, refusing it as `too_large` from its Content-Length before the body is read.
   * Missing/forbidden objects throw {@link ImageError}; other failures {@link TransientStorageError}.
   */
  async get(location: S3Location, maxBytes: number): Promise<{ body: Buffer; etag: string; size: number }> {
    this.assertAllowed(location.bucket);
    try {
      const got = await this.objects.get(location.bucket, location.key, maxBytes);
      return { ...got, etag: stripQuotes(got.etag) };
    } catch (error) {
      throw classifyStorageError(error, `get ${formatS3Uri(location)}`);
    }
  }

  /** HEAD: size, ETag and user metadata, or undefined when the object does not exist. */
  async head(
    location: S3Location,
  ): Promise<{ size: number; etag: string; metadata: Record<string, string> } | undefined> {
    this.assertAllowed(location.bucket);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: location.bucket, Key: location.key }));
      return { size: r.ContentLength ?? 0, etag: stripQuotes(r.ETag), metadata: r.Metadata ?? {} };
    } catch (error) {
      const classified = classifyStorageError(error, `head ${formatS3Uri(location)}`);
      if (classified instanceof ImageError && classified.reason === "not_found") return undefined;
      throw classified;
    }
  }

  /** Reads a small text object (JSON records); undefined when missing. */
  async getText(location: S3Location, maxBytes = 16 * 1024 * 1024): Promise<string | undefined> {
    try {
      return (await this.get(location, maxBytes)).body.toString("utf8");
    } catch (error) {
      if (error instanceof ImageError && error.reason === "not_found") return undefined;
      throw error;
    }
  }

  /**
   * Opens an object for reading as a stream (a run's results table, read line by line in bounded
   * memory). Errors as in {@link Storage.get}, also for failures while the body streams.
   */
  async getStream(location: S3Location): Promise<Readable> {
    this.assertAllowed(location.bucket);
    const what = formatS3Uri(location);
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: location.bucket, Key: location.key }),
      );
      const body = response.Body as Readable | undefined;
      if (!body) throw new TransientStorageError(`get ${what}: empty response body`);
      const chunks = async function* () {
        try {
          for await (const chunk of body) yield chunk as Buffer;
        } catch (error) {
          throw classifyStorageError(error, `get ${what}`);
        }
      };
      return Readable.from(chunks(), { objectMode: false });
    } catch (error) {
      throw classifyStorageError(error, `get ${what}`);
    }
  }

  /**
   * Writes an object in one PUT: S3 makes it visible whole or not at all, never partially. The
   * body's CRC32 goes with it (computed natively), so S3 refuses a body damaged on the way.
   */
  async put(
    location: S3Location,
    body: Buffer | string,
    options: { contentType: string; metadata?: Record<string, string> },
  ): Promise<void> {
    this.assertAllowed(location.bucket);
    const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
    const headers: Record<string, string> = {
      "content-type": options.contentType,
      "x-amz-checksum-crc32": crc32Base64(bytes),
    };
    for (const [name, value] of Object.entries(options.metadata ?? {})) headers[`x-amz-meta-${name}`] = value;
    try {
      await this.objects.put(location.bucket, location.key, bytes, headers);
    } catch (error) {
      throw classifyStorageError(error, `put ${formatS3Uri(location)}`);
    }
  }

  /** Streams a large object (a run's results table) with a multipart upload, in bounded memory. */
  async putStream(location: S3Location, body: Readable, contentType: string): Promise<void> {
    this.assertAllowed(location.bucket);
    try {
      await new Upload({
        client: this.client,
        params: { Bucket: location.bucket, Key: location.key, Body: body, ContentType: contentType },
        queueSize: 2,
        partSize: 8 * 1024 * 1024,
      }).done();
    } catch (error) {
      throw classifyStorageError(error, `put ${formatS3Uri(location)}`);
    }
  }

  /** Closes pooled sockets. */
  close(): void {
    this.objects.close();
    this.client.destroy();
  }
}

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { S3Client } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import { ImageError } from "./errors.js";

/** An S3 error answer (or an HTTP failure status): its status and S3 error code. */
export class S3HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    // The S3 error code as the name, as the SDK's exceptions have it (NoSuchKey, AccessDenied).
    this.name = code || `HTTP${status}`;
  }
}

/** A connection fault or a request S3 stopped answering: worth another attempt. */
class ConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

export interface ObjectClientOptions {
  /** A request S3 stops answering for this long is abandoned (and retried). */
  requestTimeoutMs: number;
  /** Send PUT bodies as UNSIGNED-PAYLOAD (over HTTPS); else their SHA-256 is signed. */
  unsignedPayload: boolean;
  /** Attempts per request for transient faults (5xx, throttling, dropped connections). @defaultValue 4 */
  maxAttempts?: number;
}

interface BucketEndpoint {
  url: URL;
  signer: SignatureV4;
}

/** S3's rules for a key in a path: each segment URI-encoded, `!'()*` too (as the SDK does). */
function encodeKey(key: string): string {
  return key
    .split("/")
    .map((segment) =>
      encodeURIComponent(segment).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join("/");
}

const RETRYABLE_CODES = new Set([
  "SlowDown",
  "RequestTimeout",
  "InternalError",
  "ServiceUnavailable",
  "Throttling",
]);

function retryable(error: unknown): boolean {
  if (error instanceof ConnectionError) return true;
  if (error instanceof S3HttpError)
    return error.status >= 500 || error.status === 429 || RETRYABLE_CODES.has(error.code);
  return false;
}

/**
 * Single-object GET and PUT straight over HTTP, signed with the SDK's own SigV4 signer, endpoint
 * rules and credentials. A worker makes three such requests per image; through the SDK's
 * middleware stack each cost about 0.7 CPU-ms more than the HTTP request itself
 * (bench/s3-request-cost.mjs), a large share of a worker's host CPU per image. Everything else
 * (listing, HEAD, multipart uploads) stays with the SDK. Transient faults are retried with
 * jittered exponential back-off, as the SDK's standard retry mode does.
 */
export class ObjectClient {
  private readonly endpoints = new Map<string, Promise<BucketEndpoint>>();
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });

  constructor(
    private readonly sdk: S3Client,
    private readonly customEndpoint: string,
    private readonly options: ObjectClientOptions,
  ) {}

  /**
   * GETs an object, refusing it as `too_large` (an {@link ImageError}) from its Content-Length
   * before the body is read, and again if more bytes arrive than that.
   */
  get(bucket: string, key: string, maxBytes: number): Promise<{ body: Buffer; etag: string; size: number }> {
    return this.withRetries(async () => {
      const response = await this.send("GET", bucket, key, {});
      const declared = Number(response.headers["content-length"] ?? Number.NaN);
      if (declared > maxBytes) {
        response.destroy();
        throw new ImageError("too_large", `${declared} bytes exceeds the limit of ${maxBytes}`);
      }
      const body = await readBody(response, maxBytes);
      return { body, etag: String(response.headers.etag ?? ""), size: body.length };
    });
  }

  /** PUTs an object with its headers (content type, checksum, metadata) in one request. */
  put(bucket: string, key: string, body: Buffer, headers: Record<string, string>): Promise<void> {
    return this.withRetries(async () => {
      const response = await this.send("PUT", bucket, key, headers, body);
      response.resume();
      await new Promise<void>((resolve, reject) => {
        response.once("end", resolve);
        response.once("error", reject);
      });
    });
  }

  /** Closes pooled sockets. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private async withRetries<T>(attempt: () => Promise<T>): Promise<T> {
    const attempts = this.options.maxAttempts ?? 4;
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (n >= attempts || !retryable(error)) throw error;
        // Full jitter over an exponential ceiling (the SDK's standard retry: base 100 ms, cap 20 s).
        const ceiling = Math.min(20_000, 100 * 2 ** n);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
      }
    }
  }

  /** The bucket's endpoint by the SDK's endpoint rules (partition, path style, custom endpoint), once. */
  private endpoint(bucket: string): Promise<BucketEndpoint> {
    let resolved = this.endpoints.get(bucket);
    if (!resolved) {
      resolved = (async () => {
        const config = this.sdk.config;
        const region = await config.region();
        const endpoint = config.endpointProvider({
          Bucket: bucket,
          Region: region,
          UseFIPS: await config.useFipsEndpoint(),
          UseDualStack: await config.useDualstackEndpoint(),
          ForcePathStyle: config.forcePathStyle,
          Accelerate: false,
          ...(this.customEndpoint && { Endpoint: this.customEndpoint }),
        });
        const scheme = (endpoint.properties?.authSchemes as { signingRegion?: string }[] | undefined)?.[0];
        const signer = new SignatureV4({
          credentials: config.credentials,
          region: scheme?.signingRegion ?? region,
          service: "s3",
          sha256: config.sha256,
          // S3 signs the path as sent, without encoding it a second time.
          uriEscapePath: false,
          applyChecksum: true,
        });
        return { url: new URL(endpoint.url.href), signer };
      })();
      resolved.catch(() => this.endpoints.delete(bucket));
      this.endpoints.set(bucket, resolved);
    }
    return resolved;
  }

  private async send(
    method: "GET" | "PUT",
    bucket: string,
    key: string,
    headers: Record<string, string>,
    body?: Buffer,
  ): Promise<IncomingMessage> {
    const { url, signer } = await this.endpoint(bucket);
    const base = url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`;
    const all: Record<string, string> = { ...headers, host: url.host };
    if (body) {
      all["content-length"] = String(body.length);
      if (this.options.unsignedPayload) all["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
    }
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port && { port: Number(url.port) }),
      path: base + encodeKey(key),
      headers: all,
      query: {},
      ...(body && { body }),
    });
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const request = send(
        {
          method,
          hostname: url.hostname,
          port: url.port || undefined,
          path: signed.path,
          headers: signed.headers,
          agent: url.protocol === "https:" ? this.httpsAgent : this.httpAgent,
          timeout: this.options.requestTimeoutMs,
        },
        (response) => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            // From here the body's reader owns the timeout: an answer that stalls mid-body fails.
            resolve(response);
            return;
          }
          readBody(response, 64 * 1024).then(
            (text) => reject(errorOf(status, text.toString("utf8"))),
            () => reject(errorOf(status, "")),
          );
        },
      );
      request.on("timeout", () =>
        request.destroy(new ConnectionError(`no answer within ${this.options.requestTimeoutMs} ms`)),
      );
      request.on("error", (error) =>
        reject(
          error instanceof ConnectionError ? error : new ConnectionError(error.message, { cause: error }),
        ),
      );
      request.end(body);
    });
  }
}

/** The S3 error of an answer: its XML code and message, or the status alone. */
function errorOf(status: number, text: string): S3HttpError {
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? (status === 404 ? "NotFound" : "");
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? `HTTP ${status}`;
  return new S3HttpError(status, code, `${code ? `${code}: ` : ""}${message}`);
}

/** Reads a body, failing as `too_large` once more than `maxBytes` arrive (Content-Length can lie). */
function readBody(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    response.on("data", (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        response.destroy();
        reject(new ImageError("too_large", `more than ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    response.once("end", () => resolve(Buffer.concat(chunks, total)));
    response.once("error", (error) => reject(new ConnectionError(error.message, { cause: error })));
    response.once("aborted", () => reject(new ConnectionError("the answer was cut short")));
  });
}

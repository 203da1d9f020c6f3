import type S3rver from "s3rver";

type Middleware = S3rver.Middleware;
type Query = S3rver.Context["query"];

/**
 * Installs the fixes below just before s3rver's router, so they see the request first and its
 * response body before it is serialised to XML. Call before `run()`.
 */
export function installS3rverFixes(server: S3rver): void {
  const routerIndex = Math.max(0, server.middleware.length - 1);
  server.middleware.splice(routerIndex, 0, rejectStreamingUploads, listObjectsV2WithoutDes);
}

function s3Error(ctx: S3rver.Context, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.body = { Error: { Code: code, Message: message } };
}

/**
 * s3rver stores `aws-chunked` bodies (SDK v3 streams with a CRC32 trailer) verbatim, chunk
 * framing and all. Fail loudly instead of silently corrupting the object.
 */
const rejectStreamingUploads: Middleware = async (ctx, next) => {
  const chunked = ctx.get("content-encoding").includes("aws-chunked");
  if (chunked || ctx.get("x-amz-content-sha256").startsWith("STREAMING-")) {
    s3Error(
      ctx,
      501,
      "NotImplemented",
      "aws-chunked uploads are not supported by the local S3 server; " +
        'set requestChecksumCalculation: "WHEN_REQUIRED" on the S3Client',
    );
    return;
  }
  await next();
};

const one = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

/**
 * s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node >= 17) no
 * longer ships, so every truncated V2 listing fails with a 500. Serve V2 through s3rver's V1
 * listing (marker = start key) and use the base64url of the last key as the token.
 */
const listObjectsV2WithoutDes: Middleware = async (ctx, next) => {
  const query = ctx.query;
  if (ctx.method !== "GET" || one(query["list-type"]) !== "2") return next();

  const token = one(query["continuation-token"]);
  const startAfter = one(query["start-after"]);
  const v1: Query = {
    ...query,
    "list-type": undefined,
    "continuation-token": undefined,
    "start-after": undefined,
  };
  const marker = token ? Buffer.from(token, "base64url").toString("utf8") : startAfter;
  ctx.query = Object.fromEntries(
    Object.entries({ ...v1, marker }).filter(([, value]) => value !== undefined),
  );
  await next();

  const result = (ctx.body as { ListBucketResult?: Record<string, unknown> } | undefined)?.ListBucketResult;
  if (!result) return; // an error response: pass it through unchanged
  const contents = (result.Contents ?? []) as { Key: string; Owner?: unknown }[];
  if (one(query["fetch-owner"]) !== "true") for (const entry of contents) delete entry.Owner;
  const lastKey = contents.at(-1)?.Key;
  delete result.Marker;
  delete result.NextMarker;
  Object.assign(result, {
    StartAfter: token ? undefined : startAfter,
    ContinuationToken: token,
    NextContinuationToken:
      result.IsTruncated && lastKey !== undefined ? Buffer.from(lastKey).toString("base64url") : undefined,
    KeyCount: contents.length,
  });
};

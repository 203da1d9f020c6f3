import { MemscoreError } from "./errors.js";

/** A bucket and key; the key may be a prefix (empty for the whole bucket). */
export interface S3Location {
  bucket: string;
  key: string;
}

/** An s3:// URI was malformed, used another scheme, or named a bucket outside the allow-list. */
export class S3UriError extends MemscoreError {
  constructor(message: string) {
    super("invalid_uri", message);
  }
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** S3's limit on key length, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

/**
 * Parses `s3://bucket/key`. Keys are taken verbatim (no percent-decoding: S3 keys may contain
 * `%`, `+`, spaces and any unicode). Only the s3 scheme is accepted, so a job can never point a
 * worker at http(s):// or file:// URLs.
 */
export function parseS3Uri(uri: string): S3Location {
  if (typeof uri !== "string" || !uri.startsWith("s3://")) {
    const scheme = typeof uri === "string" ? (/^([a-z][a-z0-9+.-]*):/i.exec(uri)?.[1] ?? "none") : typeof uri;
    throw new S3UriError(`expected an s3://bucket/key URI, got scheme "${scheme}"`);
  }
  const rest = uri.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const key = slash === -1 ? "" : rest.slice(slash + 1);
  if (!BUCKET_NAME.test(bucket) || bucket.includes(".."))
    throw new S3UriError(`"${bucket}" is not a valid bucket name`);
  if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES)
    throw new S3UriError(`key is longer than ${MAX_KEY_BYTES} bytes`);
  for (const ch of key) {
    const code = ch.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) throw new S3UriError("key contains control characters");
  }
  return { bucket, key };
}

/** Formats a location as `s3://bucket/key`. */
export function formatS3Uri(location: S3Location): string {
  return `s3://${location.bucket}/${location.key}`;
}

/** Ensures a prefix ends with "/" (unless empty), so `prefix + relative` never merges names. */
export function asPrefix(key: string): string {
  return key === "" || key.endsWith("/") ? key : `${key}/`;
}

/**
 * Makes a relative output path safe to append to an output prefix: `.` and `..` segments are
 * percent-encoded so that no tool that normalises paths can make an output escape its prefix.
 */
export function safeRelativeKey(relative: string): string {
  return relative
    .replace(/^\/+/, "")
    .split("/")
    .map((segment) => (segment === "." ? "%2E" : segment === ".." ? "%2E%2E" : segment))
    .join("/");
}

/** Refuses buckets outside a non-empty allow-list. */
export function assertBucketAllowed(bucket: string, allowedBuckets: readonly string[]): void {
  if (allowedBuckets.length > 0 && !allowedBuckets.includes(bucket)) {
    throw new S3UriError(
      `bucket "${bucket}" is not in MEMSCORE_ALLOWED_BUCKETS (${allowedBuckets.join(", ")})`,
    );
  }
}

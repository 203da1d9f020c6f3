import { asPrefix, formatS3Uri, parseS3Uri, type Storage } from "@memscore/shared";
import type { ListedImage } from "./listed-image.js";

export interface PrefixListingOptions {
  /** Resume after this key (the checkpoint cursor of an interrupted run). */
  startAfter?: string;
  /**
   * Keys under this `s3://` prefix are not inputs: when the output prefix lies inside the input
   * prefix, a re-run must not score the previous run's records and heatmaps.
   */
  excludePrefix?: string;
  /** @defaultValue 1000 (S3's maximum page) */
  pageSize?: number;
}

/**
 * Streams the images under `s3://bucket/prefix/`, one listing page in memory at a time. The
 * prefix is treated as a folder (`s3://b/photos` lists `photos/…`, not `photos2/…`). Keys ending
 * in "/" are folder markers and are skipped; other zero-byte objects are kept, since they are
 * broken inputs that must get an error outcome rather than vanish.
 */
export async function* listPrefixImages(
  storage: Storage,
  prefixUri: string,
  options: PrefixListingOptions = {},
): AsyncGenerator<ListedImage> {
  const input = parseS3Uri(prefixUri);
  const prefix = asPrefix(input.key);
  const exclude = options.excludePrefix ? parseS3Uri(options.excludePrefix) : undefined;
  // Only a prefix strictly inside the input can be excluded; excluding a parent would list nothing.
  const excludeKey =
    exclude &&
    exclude.bucket === input.bucket &&
    asPrefix(exclude.key).startsWith(prefix) &&
    asPrefix(exclude.key) !== prefix
      ? asPrefix(exclude.key)
      : undefined;
  const pages = storage.list(
    { bucket: input.bucket, key: prefix },
    {
      ...(options.startAfter ? { startAfter: options.startAfter } : {}),
      ...(options.pageSize ? { pageSize: options.pageSize } : {}),
    },
  );
  for await (const object of pages) {
    if (object.key.endsWith("/")) continue;
    if (excludeKey !== undefined && object.key.startsWith(excludeKey)) continue;
    yield {
      uri: formatS3Uri({ bucket: input.bucket, key: object.key }),
      rel: object.key.slice(prefix.length),
      size: object.size,
      etag: object.etag,
      cursor: object.key,
    };
  }
}

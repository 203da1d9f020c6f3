/**
 * One input image as the producer lists it, before it becomes part of a chunk. `cursor` is where a
 * resumed listing continues after this image: the S3 key for prefix input (StartAfter), the line
 * number for a manifest.
 */
export interface ListedImage {
  /** `s3://bucket/key` of the image. */
  uri: string;
  /** Output path relative to the output prefix (see ChunkImage.rel). */
  rel: string;
  /** From the listing; undefined for manifest input. */
  size?: number;
  /** ETag without quotes, from the listing; undefined for manifest input. */
  etag?: string;
  cursor: string;
}

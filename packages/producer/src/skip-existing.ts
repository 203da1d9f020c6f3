import {
  type HeatmapFormat,
  outputLocations,
  parseS3Uri,
  RECORD_METADATA,
  S3UriError,
  type Storage,
} from "@memscore/shared";
import type { ListedImage } from "./listed-image.js";

const unquote = (etag: string | undefined): string => (etag ?? "").replace(/^"|"$/g, "");

/**
 * Whether an image already has a scored output record for this exact input, model and heatmap
 * format, judged from the record's S3 metadata with a HEAD (no GET). A record from another model,
 * an error record, one whose heatmap has another format (the run asks for another file), or one
 * written for an older version of the input (another ETag) means "score again".
 * Manifest entries carry no ETag, so the input itself is HEADed too; a missing input is never
 * skipped (the worker gives it a `not_found` outcome).
 */
export async function hasCurrentRecord(
  storage: Storage,
  outputPrefix: string,
  image: ListedImage,
  modelSha256: string,
  heatmapFormat: HeatmapFormat,
): Promise<boolean> {
  let location: ReturnType<typeof outputLocations>;
  try {
    location = outputLocations(outputPrefix, image.rel, heatmapFormat);
  } catch (error) {
    // No record can exist where none can be written: enqueue it, the worker reports invalid_uri.
    if (error instanceof S3UriError) return false;
    throw error;
  }
  const record = await storage.head(location.record);
  if (!record) return false;
  const meta = record.metadata;
  if (meta[RECORD_METADATA.status] !== "scored" || meta[RECORD_METADATA.modelSha256] !== modelSha256)
    return false;
  // Records from before heatmap formats existed carry no format: they wrote PNG heatmaps.
  if ((meta[RECORD_METADATA.heatmapFormat] ?? "png") !== heatmapFormat) return false;
  let inputEtag = image.etag;
  if (inputEtag === undefined) inputEtag = (await storage.head(parseS3Uri(image.uri)))?.etag;
  return (
    inputEtag !== undefined &&
    inputEtag !== "" &&
    unquote(meta[RECORD_METADATA.inputEtag]) === unquote(inputEtag)
  );
}

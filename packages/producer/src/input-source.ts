import { resolve } from "node:path";
import { parseS3Uri, type Storage } from "@memscore/shared";
import type { EnqueueInput } from "./enqueue-options.js";
import type { ListedImage } from "./listed-image.js";
import { listManifestImages, validateManifest } from "./manifest.js";
import { listPrefixImages } from "./prefix-listing.js";

/** An input that passed validation and can be listed from a checkpoint cursor. */
export interface InputSource {
  /** Stored with the run, so a resumed enqueue can tell it is resuming the same input. */
  description: string;
  list(afterCursor: string | undefined): AsyncGenerator<ListedImage>;
}

/**
 * Validates an input completely before anything is enqueued: the prefix's bucket must be allowed;
 * a manifest is read once end to end and refused at its first bad or forbidden URI.
 */
export async function openInputSource(
  storage: Storage,
  input: EnqueueInput,
  outputPrefix: string,
): Promise<InputSource> {
  if ("prefix" in input) {
    storage.assertAllowed(parseS3Uri(input.prefix).bucket);
    return {
      description: input.prefix,
      list: (after) =>
        listPrefixImages(storage, input.prefix, {
          excludePrefix: outputPrefix,
          ...(after ? { startAfter: after } : {}),
        }),
    };
  }
  await validateManifest(input.manifest, (bucket) => storage.assertAllowed(bucket));
  return {
    description: `manifest:${resolve(input.manifest)}`,
    list: (after) => listManifestImages(input.manifest, after ? { afterLine: Number(after) } : {}),
  };
}

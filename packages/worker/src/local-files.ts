import { readdir, stat } from "node:fs/promises";
import { extname, join, relative } from "node:path";

/** Extensions picked up when a directory is given; a file named explicitly is always tried. */
const IMAGE_EXTENSIONS = new Set([
  ".jpg",
  ".jpeg",
  ".png",
  ".webp",
  ".gif",
  ".tif",
  ".tiff",
  ".avif",
  ".heic",
  ".heif",
]);

/** A local file to score: where it is, and the name to show and to derive output names from. */
export interface LocalImageFile {
  path: string;
  /** Path relative to the directory it was found in, or the path as given for explicit files. */
  name: string;
}

async function walk(dir: string, root: string, out: LocalImageFile[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, root, out);
    else if (entry.isFile() && IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
      out.push({ path: full, name: relative(root, full) });
    }
  }
}

/**
 * Expands files and directories (recursively, sorted, image extensions only) into the list of
 * files to score. Paths that do not exist are kept: scoring reports them as `not_found`.
 */
export async function listLocalImages(paths: readonly string[]): Promise<LocalImageFile[]> {
  const out: LocalImageFile[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (info?.isDirectory()) await walk(path, path, out);
    else out.push({ path, name: path });
  }
  return out;
}

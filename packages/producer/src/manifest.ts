import { createReadStream } from "node:fs";
import { extname } from "node:path";
import { createInterface } from "node:readline";
import { describeError, parseS3Uri, type S3Location } from "@memscore/shared";
import { parseCsvRecord } from "./csv-record.js";
import { ManifestError } from "./errors.js";
import type { ListedImage } from "./listed-image.js";

/** How a manifest file is read, chosen from its extension. */
export type ManifestFormat = "lines" | "csv" | "jsonl";

/** One URI from a manifest and the (last) line it came from. */
export interface ManifestEntry {
  uri: string;
  line: number;
}

/** `.csv` → CSV with a `uri` column; `.jsonl`/`.ndjson` → JSON objects with `uri`; else one URI per line. */
export function manifestFormat(path: string): ManifestFormat {
  const ext = extname(path).toLowerCase();
  if (ext === ".csv") return "csv";
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  return "lines";
}

/**
 * Streams the URIs of a manifest, one physical line at a time, so a manifest of millions of lines
 * never sits in memory. Entries on lines ≤ `afterLine` are read (a CSV header and open quotes
 * still have to be tracked) but not yielded: that is how a resumed run skips what it enqueued.
 * A malformed line throws {@link ManifestError} naming the file and line.
 */
export async function* readManifest(
  path: string,
  options: { afterLine?: number } = {},
): AsyncGenerator<ManifestEntry> {
  const format = manifestFormat(path);
  const afterLine = options.afterLine ?? 0;
  const lines = createInterface({
    input: createReadStream(path, { encoding: "utf8" }),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let lineNo = 0;
  let uriColumn = -1; // CSV: index of the `uri` column, once the header is read
  let pending = ""; // CSV: a record whose quoted field continues on the next line
  let pendingStart = 0;
  try {
    for await (let text of lines) {
      lineNo++;
      if (lineNo === 1) text = text.replace(/^\uFEFF/, ""); // editors on Windows add a BOM
      if (format === "lines") {
        const uri = text.trim();
        if (uri === "" || uri.startsWith("#") || lineNo <= afterLine) continue;
        yield { uri, line: lineNo };
      } else if (format === "jsonl") {
        if (text.trim() === "" || lineNo <= afterLine) continue;
        yield { uri: jsonlUri(path, lineNo, text), line: lineNo };
      } else {
        if (pending === "" && text.trim() === "") continue;
        if (pending === "") pendingStart = lineNo;
        const record = parseCsvRecord(pending === "" ? text : `${pending}\n${text}`);
        if (record === undefined) {
          pending = pending === "" ? text : `${pending}\n${text}`;
          continue;
        }
        pending = "";
        if (uriColumn === -1) {
          uriColumn = record.findIndex((name) => name.trim().toLowerCase() === "uri");
          if (uriColumn === -1)
            throw new ManifestError(path, lineNo, `CSV header has no "uri" column (got ${record.join(",")})`);
          continue;
        }
        if (lineNo <= afterLine) continue;
        const uri = record[uriColumn]?.trim() ?? "";
        if (uri === "") throw new ManifestError(path, lineNo, `no value in the "uri" column`);
        yield { uri, line: lineNo };
      }
    }
  } finally {
    lines.close();
  }
  if (pending !== "") throw new ManifestError(path, pendingStart, "quoted CSV field is never closed");
  if (format === "csv" && uriColumn === -1 && lineNo > 0)
    throw new ManifestError(path, 1, "CSV file has no header row");
}

function jsonlUri(path: string, line: number, text: string): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(path, line, `not valid JSON (${describeError(error)})`);
  }
  const uri =
    typeof value === "object" && value !== null ? (value as Record<string, unknown>).uri : undefined;
  if (typeof uri !== "string")
    throw new ManifestError(path, line, `expected a JSON object with a string "uri" field`);
  return uri.trim();
}

/** Parses a manifest URI as an input object: s3 scheme, valid bucket, a key that names an object. */
function parseManifestUri(path: string, entry: ManifestEntry): S3Location {
  try {
    const location = parseS3Uri(entry.uri);
    if (location.key === "" || location.key.endsWith("/")) throw new Error("names a prefix, not an object");
    return location;
  } catch (error) {
    throw new ManifestError(path, entry.line, `${JSON.stringify(entry.uri)}: ${describeError(error)}`);
  }
}

/**
 * The first pass over a manifest: every URI must parse and its bucket must pass `assertAllowed`.
 * It runs to the end before anything is enqueued, so one bad line refuses the whole run instead
 * of leaving half of it in the queue. Returns the number of entries.
 */
export async function validateManifest(
  path: string,
  assertAllowed: (bucket: string) => void,
): Promise<number> {
  let entries = 0;
  for await (const entry of readManifest(path)) {
    const { bucket } = parseManifestUri(path, entry);
    try {
      assertAllowed(bucket);
    } catch (error) {
      throw new ManifestError(path, entry.line, `${JSON.stringify(entry.uri)}: ${describeError(error)}`);
    }
    entries++;
  }
  return entries;
}

/**
 * The images of a manifest, for enqueueing. `rel` is `bucket/key` so that images from several
 * buckets cannot collide under one output prefix; the cursor is the line number.
 */
export async function* listManifestImages(
  path: string,
  options: { afterLine?: number } = {},
): AsyncGenerator<ListedImage> {
  for await (const entry of readManifest(path, options)) {
    const { bucket, key } = parseManifestUri(path, entry);
    yield { uri: entry.uri, rel: `${bucket}/${key}`, cursor: String(entry.line) };
  }
}

import { describe, expect, it } from "vitest";
import {
  assertBucketAllowed,
  chunkJobId,
  formatS3Uri,
  outputLocations,
  parseS3Uri,
  safeRelativeKey,
  validateChunkJob,
} from "../src/index.js";

describe("s3:// URIs", () => {
  it.each([
    ["s3://bucket/plain.jpg", "plain.jpg"],
    ["s3://bucket/with space/and+plus%20percent.jpg", "with space/and+plus%20percent.jpg"],
    ["s3://bucket/café/日本/фото.png", "café/日本/фото.png"],
    ["s3://bucket/", ""],
    ["s3://bucket", ""],
  ])("parses %s verbatim (no percent-decoding)", (uri, key) => {
    const location = parseS3Uri(uri);
    expect(location).toEqual({ bucket: "bucket", key });
    expect(parseS3Uri(formatS3Uri(location))).toEqual(location);
  });

  it("accepts keys up to 1024 UTF-8 bytes and refuses longer ones", () => {
    const longest = "é".repeat(512); // 2 bytes each
    expect(parseS3Uri(`s3://bucket/${longest}`).key).toBe(longest);
    expect(() => parseS3Uri(`s3://bucket/${longest}a`)).toThrow(/longer than 1024 bytes/);
  });

  it.each([
    ["https://bucket.s3.amazonaws.com/a.jpg", /scheme "https"/],
    ["file:///etc/passwd", /scheme "file"/],
    ["/local/path.jpg", /scheme "none"/],
    ["s3://Not_A_Bucket/a.jpg", /not a valid bucket name/],
    ["s3://bucket/line\nbreak.jpg", /control characters/],
  ])("refuses %s", (uri, message) => {
    expect(() => parseS3Uri(uri)).toThrow(message);
  });

  it("refuses buckets outside a non-empty allow-list", () => {
    expect(() => assertBucketAllowed("other", ["in", "out"])).toThrow(/not in MEMSCORE_ALLOWED_BUCKETS/);
    expect(() => assertBucketAllowed("anything", [])).not.toThrow();
  });

  it("keeps outputs under the output prefix whatever the relative path", () => {
    expect(safeRelativeKey("a/../../b/./c.jpg")).toBe("a/%2E%2E/%2E%2E/b/%2E/c.jpg");
    const { record, heatmap } = outputLocations("s3://out/scores", "../x.jpg", "png");
    expect(record).toEqual({ bucket: "out", key: "scores/%2E%2E/x.jpg.json" });
    expect(heatmap?.key).toBe("scores/%2E%2E/x.jpg.heatmap.png");
  });

  it("names the heatmap after its format, and none at all for scores only", () => {
    expect(outputLocations("s3://out/p/", "a/b.jpg", "jpeg").heatmap?.key).toBe("p/a/b.jpg.heatmap.jpg");
    expect(outputLocations("s3://out/p/", "a/b.jpg", "webp").heatmap?.key).toBe("p/a/b.jpg.heatmap.webp");
    expect(outputLocations("s3://out/p/", "a/b.jpg", "none").heatmap).toBeUndefined();
  });
});

describe("chunk job payloads", () => {
  const good = {
    v: 1,
    runId: "run-1",
    chunkIndex: 3,
    outputPrefix: "s3://output/scores/",
    images: [{ uri: "s3://input/a.jpg", rel: "a.jpg", size: 10 }],
  };

  it("accepts a well-formed job and has deterministic ids", () => {
    expect(validateChunkJob(good, { allowedBuckets: ["input", "output"] })).toEqual(good);
    expect(chunkJobId("run-1", 3)).toBe("run-1-00000003");
  });

  it.each([
    [{ ...good, v: 2 }, /unsupported version/],
    [{ ...good, runId: "../etc" }, /runId/],
    [{ ...good, chunkIndex: -1 }, /chunkIndex/],
    [{ ...good, outputPrefix: "https://evil/" }, /outputPrefix/],
    [{ ...good, images: [] }, /images must be a list/],
    [{ ...good, images: [{ uri: "file:///etc/passwd", rel: "x" }] }, /images\[0\]\.uri/],
    [{ ...good, images: [{ uri: "s3://elsewhere/a.jpg", rel: "x" }] }, /not in MEMSCORE_ALLOWED_BUCKETS/],
    [{ ...good, images: [{ uri: "s3://input/a.jpg", rel: "a", size: -5 }] }, /size/],
    ["a string", /not an object/],
  ])("refuses a malformed or hostile payload (%#)", (payload, message) => {
    expect(() => validateChunkJob(payload, { allowedBuckets: ["input", "output"] })).toThrow(message);
  });

  it("refuses an output prefix outside the configured output bucket", () => {
    expect(() => validateChunkJob(good, { allowedBuckets: [], outputBucket: "results" })).toThrow(
      /not the configured output bucket/,
    );
  });
});

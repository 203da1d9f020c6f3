import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listManifestImages, ManifestError, readManifest, validateManifest } from "../src/index.js";

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe("manifest reading", () => {
  let dir: string;
  const file = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "memscore-manifest-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads plain lines, ignoring blanks and # comments, with CRLF and a BOM", async () => {
    const path = await file(
      "list.txt",
      "\uFEFFs3://in-a/one.jpg\r\n\r\n# a comment\r\n  s3://in-b/two words.jpg  \r\n",
    );
    expect(await collect(readManifest(path))).toEqual([
      { uri: "s3://in-a/one.jpg", line: 1 },
      { uri: "s3://in-b/two words.jpg", line: 4 },
    ]);
  });

  it("reads the uri column of a CSV, with RFC 4180 quoting across lines", async () => {
    const csv = [
      'id,"uri",note',
      '1,s3://in-a/plain.jpg,"hello, world"',
      '2,"s3://in-a/with,comma.jpg","she said ""hi"""',
      "",
      '3,"s3://in-a/x.jpg","a note',
      'over two lines"',
    ].join("\n");
    const path = await file("list.csv", csv);
    expect(await collect(readManifest(path))).toEqual([
      { uri: "s3://in-a/plain.jpg", line: 2 },
      { uri: "s3://in-a/with,comma.jpg", line: 3 },
      { uri: "s3://in-a/x.jpg", line: 6 },
    ]);
  });

  it("reads the uri field of JSONL", async () => {
    const path = await file(
      "list.ndjson",
      '{"uri":"s3://in-a/a.jpg","x":1}\n\n{"uri":"s3://in-a/é b+c%20.jpg"}\n',
    );
    expect(await collect(listManifestImages(path))).toEqual([
      { uri: "s3://in-a/a.jpg", rel: "in-a/a.jpg", cursor: "1" },
      { uri: "s3://in-a/é b+c%20.jpg", rel: "in-a/é b+c%20.jpg", cursor: "3" },
    ]);
  });

  it("skips lines up to a resume cursor", async () => {
    const path = await file("resume.csv", "uri\ns3://in-a/1.jpg\ns3://in-a/2.jpg\ns3://in-a/3.jpg\n");
    expect((await collect(readManifest(path, { afterLine: 3 }))).map((e) => e.uri)).toEqual([
      "s3://in-a/3.jpg",
    ]);
  });

  it.each([
    ["bad.jsonl", '{"uri":"s3://in-a/a.jpg"}\n{"uri": 5}\n', 2, /string "uri"/],
    ["bad2.jsonl", '{"uri":"s3://in-a/a.jpg"}\n\n{not json\n', 3, /not valid JSON/],
    ["noheader.csv", "path\ns3://in-a/a.jpg\n", 1, /no "uri" column/],
    ["open.csv", 'uri\n"s3://in-a/a.jpg\n', 2, /never closed/],
    ["empty-cell.csv", "uri,n\n,1\n", 2, /no value/],
  ])("refuses %s naming line %i", async (name, text, line, message) => {
    const path = await file(name, text);
    const error = await collect(readManifest(path)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).line).toBe(line);
    expect((error as ManifestError).message).toMatch(message);
    expect((error as ManifestError).message).toContain(`${path}:${line}:`);
  });

  it("validation names the line and URI of a bad scheme, a prefix, or a forbidden bucket", async () => {
    const allow = (bucket: string) => {
      if (bucket !== "in-a") throw new Error(`bucket "${bucket}" is not allowed`);
    };
    const cases: [string, number, string][] = [
      ["s3://in-a/ok.jpg\nhttps://in-a/x.jpg\n", 2, "https://in-a/x.jpg"],
      ["s3://in-a/ok.jpg\ns3://in-a/folder/\n", 2, "s3://in-a/folder/"],
      ["s3://in-a/ok.jpg\n# skip\ns3://other-bucket/x.jpg\n", 3, "s3://other-bucket/x.jpg"],
    ];
    for (const [i, [text, line, uri]] of cases.entries()) {
      const path = await file(`v${i}.txt`, text);
      const error = await validateManifest(path, allow).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ManifestError);
      expect((error as ManifestError).line).toBe(line);
      expect((error as ManifestError).message).toContain(uri);
    }
    expect(await validateManifest(await file("ok.txt", "s3://in-a/1.jpg\ns3://in-a/2.jpg\n"), allow)).toBe(2);
  });
});

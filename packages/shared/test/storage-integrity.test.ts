import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Storage } from "../src/index.js";
import { unsignedPayloadByDefault } from "../src/storage.js";

// What a PUT carries for S3 to verify: the body's CRC32 always; the SigV4 SHA-256 of the body
// only where TLS does not already protect it (plain HTTP).
describe("S3 PUT integrity", () => {
  const seen: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { etag: '"e"', "content-length": 0 });
      res.end();
    });
  });
  let endpoint = "";
  beforeAll(async () => {
    process.env.AWS_ACCESS_KEY_ID ??= "test";
    process.env.AWS_SECRET_ACCESS_KEY ??= "test";
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const put = async (unsignedPayload: boolean | undefined, body: Buffer) => {
    const config = {
      s3Endpoint: endpoint,
      s3ForcePathStyle: true,
      awsRegion: "us-east-1",
      s3RequestTimeoutMs: 10_000,
    };
    const storage = new Storage(
      { ...config, allowedBuckets: [] },
      unsignedPayload === undefined ? {} : { unsignedPayload },
    );
    try {
      await storage.put({ bucket: "b", key: "k.jpg" }, body, { contentType: "image/jpeg" });
    } finally {
      storage.close();
    }
    return seen.at(-1) as { headers: IncomingHttpHeaders; body: Buffer };
  };
  const crc = (body: Buffer) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(crc32(body));
    return b.toString("base64");
  };

  it("over plain HTTP signs the body's SHA-256 and sends its CRC32", async () => {
    const body = Buffer.from("heatmap bytes over http");
    const request = await put(undefined, body);
    expect(request.body.equals(body)).toBe(true);
    expect(request.headers["x-amz-checksum-crc32"]).toBe(crc(body));
    expect(request.headers["x-amz-content-sha256"]).toMatch(/^[0-9a-f]{64}$/);
    expect(request.headers.authorization).toMatch(/SignedHeaders=[^,]*x-amz-checksum-crc32/);
  });

  it("unsigned (the default over HTTPS) sends UNSIGNED-PAYLOAD, the CRC32 still signed", async () => {
    const body = Buffer.from("heatmap bytes, TLS protects them");
    const request = await put(true, body);
    expect(request.headers["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
    expect(request.headers["x-amz-checksum-crc32"]).toBe(crc(body));
    expect(request.headers.authorization).toMatch(/SignedHeaders=[^,]*x-amz-checksum-crc32/);
    expect(unsignedPayloadByDefault("")).toBe(true); // AWS itself: HTTPS
    expect(unsignedPayloadByDefault("https://minio.internal:9000")).toBe(true);
    expect(unsignedPayloadByDefault("http://127.0.0.1:9000")).toBe(false);
  });
});

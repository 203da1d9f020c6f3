import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { createLogger, type Storage } from "@memscore/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testS3Client, testStorage } from "../../../test/support/s3.js";
import { startTestServices, type TestServices, uniqueName } from "../../../test/support/services.js";
import { BUNDLED_MODEL_PATH, resolveModelFile } from "../src/index.js";

describe("model source", () => {
  let services: TestServices;
  let s3: S3Client;
  let storage: Storage;
  let cacheDir: string;
  let bytes: Buffer;
  let sha: string;
  const bucket = uniqueName("models");
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l) });

  beforeAll(async () => {
    services = await startTestServices();
    s3 = testS3Client(services.env);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    bytes = await readFile(BUNDLED_MODEL_PATH);
    sha = createHash("sha256").update(bytes).digest("hex");
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "models/tiny.onnx", Body: bytes }));
    storage = testStorage(services.env);
    cacheDir = await mkdtemp(join(tmpdir(), "memscore-model-cache-"));
  });
  afterAll(async () => {
    storage?.close();
    s3?.destroy();
    await services?.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it("downloads an s3:// model once, verifies its sha256, and serves it from the cache afterwards", async () => {
    const config = { model: `s3://${bucket}/models/tiny.onnx`, modelSha256: sha };
    const path = await resolveModelFile(config, storage, logger, cacheDir);
    expect(path).toBe(join(cacheDir, `${sha}.onnx`));
    expect(
      createHash("sha256")
        .update(await readFile(path))
        .digest("hex"),
    ).toBe(sha);
    // With the object gone, a pinned sha256 is still served from the cache: no second download.
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: "models/tiny.onnx" }));
    expect(await resolveModelFile(config, storage, logger, cacheDir)).toBe(path);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "models/tiny.onnx", Body: bytes }));
  });

  it("refuses a model whose sha256 is not the pinned one, local or s3://", async () => {
    const wrong = "0".repeat(64);
    await expect(
      resolveModelFile(
        { model: `s3://${bucket}/models/tiny.onnx`, modelSha256: wrong },
        storage,
        logger,
        cacheDir,
      ),
    ).rejects.toThrow(/expected MEMSCORE_MODEL_SHA256=0{64}/);
    await expect(
      resolveModelFile({ model: BUNDLED_MODEL_PATH, modelSha256: wrong }, storage, logger, cacheDir),
    ).rejects.toThrow(/has sha256 [0-9a-f]{64}, expected/);
  });

  it("falls back to the bundled model with a warning that it is untrained", async () => {
    expect(await resolveModelFile({ model: "", modelSha256: "" }, storage, logger, cacheDir)).toBe(
      BUNDLED_MODEL_PATH,
    );
    expect(lines.some((l) => /bundled untrained model/.test(l))).toBe(true);
  });

  it("reports a missing s3:// model clearly", async () => {
    await expect(
      resolveModelFile(
        { model: `s3://${bucket}/models/missing.onnx`, modelSha256: "" },
        storage,
        logger,
        cacheDir,
      ),
    ).rejects.toThrow(/not found/);
  });
});

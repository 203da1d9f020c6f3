import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { ModelContractError } from "@memscore/shared";
import { describe, expect, it } from "vitest";
import {
  BUNDLED_MODEL_PATH,
  METADATA_KEYS,
  ModelRuntime,
  parseModelMetadata,
  readOnnxMetadataProps,
} from "../src/index.js";

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../../test/fixtures/models/${name}.onnx`, import.meta.url));

describe("ONNX metadata", () => {
  it("reads the memscore.* metadata_props of the bundled model", async () => {
    const props = readOnnxMetadataProps(await readFile(BUNDLED_MODEL_PATH));
    const meta = parseModelMetadata(props);
    expect(meta.name).toBe("resmemnet-tiny");
    expect(meta.inputSize).toBe(224);
    expect(meta.mean).toEqual([0.5, 0.5, 0.5]);
    expect(meta.std).toEqual([0.5, 0.5, 0.5]);
    expect(meta.trained).toBe(false);
  });

  it("names the missing or malformed key", () => {
    const good = new Map(Object.values(METADATA_KEYS).map((k) => [k, "1"]));
    good
      .set(METADATA_KEYS.inputSize, "224")
      .set(METADATA_KEYS.mean, "0.5,0.5,0.5")
      .set(METADATA_KEYS.std, "0.5,0.5,0.5");
    good.set(METADATA_KEYS.trained, "false");
    expect(parseModelMetadata(good).inputSize).toBe(224);
    const without = new Map(good);
    without.delete(METADATA_KEYS.version);
    expect(() => parseModelMetadata(without)).toThrow(/missing "memscore.version"/);
    expect(() => parseModelMetadata(new Map(good).set(METADATA_KEYS.std, "0.5,0,0.5"))).toThrow(
      /memscore.std/,
    );
    expect(() => parseModelMetadata(new Map(good).set(METADATA_KEYS.trained, "yes"))).toThrow(
      /memscore.trained/,
    );
  });

  it("rejects a file that is not an ONNX model", () => {
    expect(() => readOnnxMetadataProps(Buffer.from("definitely not protobuf \xff\xff\xff"))).toThrow(
      ModelContractError,
    );
  });
});

describe("ModelRuntime", () => {
  it("loads a model that meets the contract and runs a batch in order", async () => {
    const runtime = await ModelRuntime.load(fixture("contract-ok"), { provider: "cpu" });
    try {
      expect(runtime.info.gridSize).toBe(7);
      expect(runtime.info.provider).toBe("cpu");
      expect(runtime.info.sha256).toMatch(/^[0-9a-f]{64}$/);
      const n = runtime.imageElements;
      const input = new Float32Array(3 * n);
      input.fill(0.25, 0, n);
      input.fill(-0.5, n, 2 * n);
      input.fill(0.75, 2 * n, 3 * n);
      const out = await runtime.run(input, 3);
      expect(out.map((o) => o.score)).toEqual([0.25, -0.5, 0.75]);
      expect(out[0]?.gradcam).toHaveLength(49);
    } finally {
      await runtime.close();
      await runtime.close(); // idempotent
    }
  });

  it.each([
    ["wrong-input-size", /must be \[N,3,224,224\]/],
    ["missing-mean", /missing "memscore.mean"/],
    ["static-batch", /dynamic batch/],
    ["wrong-gradcam-shape", /^model output "gradcam" must be \[N,G,G\], got \[N,7,5\]$/],
    ["wrong-score-shape", /^model output "score" must be \[N\], got \[N,1\]$/],
  ])("refuses %s with a clear contract error", async (name, message) => {
    await expect(ModelRuntime.load(fixture(name), { provider: "cpu" })).rejects.toThrow(message);
  });

  it("fails clearly when an explicitly requested provider is unavailable, and auto falls back to CPU", async () => {
    await expect(ModelRuntime.load(fixture("contract-ok"), { provider: "cuda" })).rejects.toThrow(
      /no execution provider could be initialised \(cuda: /,
    );
    const lines: string[] = [];
    const { createLogger } = await import("@memscore/shared");
    const runtime = await ModelRuntime.load(fixture("contract-ok"), {
      provider: "auto",
      logger: createLogger({ write: (l) => lines.push(l) }),
    });
    await runtime.close();
    expect(runtime.info.provider).toBe("cpu");
    // The choice is logged, with why the accelerators were skipped.
    const selected = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "execution provider selected");
    expect(selected).toMatchObject({ provider: "cpu", requested: "auto" });
    expect(selected.skipped.join(" ")).toMatch(/cuda: /);
  });
});

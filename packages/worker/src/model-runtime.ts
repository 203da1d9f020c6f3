import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  type ExecutionProviderChoice,
  type Logger,
  ModelContractError,
  silentLogger,
} from "@memscore/shared";
import * as ort from "onnxruntime-node";
import { type ExecutionProviderName, firstWorkingProvider } from "./execution-provider.js";
import { type ModelMetadata, parseModelMetadata } from "./model-metadata.js";
import { readOnnxMetadataProps } from "./onnx-metadata.js";

/** Identity of a loaded model; goes into every output so a score can be traced to its model. */
export interface ModelInfo extends ModelMetadata {
  /** sha256 of the model file: the model's identity (design.md). */
  sha256: string;
  path: string;
  provider: ExecutionProviderName;
  /** Side of the square Grad-CAM grid (7 for 224 input). */
  gridSize: number;
}

/** One image's raw model outputs. */
export interface ModelOutput {
  score: number;
  /** Raw (unnormalised) Grad-CAM, row-major gridSize×gridSize. */
  gradcam: Float32Array;
}

export interface ModelRuntimeOptions {
  /** @defaultValue "auto" */
  provider?: ExecutionProviderChoice;
  /** The GPU of the `cuda` provider, among those the process sees. @defaultValue 0 */
  cudaDeviceId?: number;
  /** ONNX Runtime intra-op threads. @defaultValue ONNX Runtime's own default (all cores) */
  intraOpThreads?: number;
  /**
   * Whether ONNX Runtime's pool threads busy-wait for work between and after operators. Spinning
   * lowers latency on an idle machine, but burns cores that decode, heatmap rendering and S3 I/O
   * need when they share the CPU with inference (the worker's case). @defaultValue false
   */
  threadSpinning?: boolean;
  logger?: Logger;
}

const INPUT_NAME = "image";
const SCORE_NAME = "score";
const GRADCAM_NAME = "gradcam";

function tensorShape(
  meta: readonly ort.InferenceSession.ValueMetadata[],
  name: string,
): ReadonlyArray<number | string> {
  const value = meta.find((m) => m.name === name);
  if (!value)
    throw new ModelContractError(`model has no "${name}" ${meta === undefined ? "value" : "input/output"}`);
  if (!value.isTensor || value.type !== "float32")
    throw new ModelContractError(`model "${name}" must be a float32 tensor`);
  return value.shape;
}

function isDynamic(dim: number | string | undefined): boolean {
  return typeof dim === "string" || dim === -1;
}

/** Checks the input/output names and shapes against the contract; returns the Grad-CAM grid size. */
function checkSignature(session: ort.InferenceSession, inputSize: number): number {
  const input = tensorShape(session.inputMetadata, INPUT_NAME);
  if (
    input.length !== 4 ||
    !isDynamic(input[0]) ||
    input[1] !== 3 ||
    input[2] !== inputSize ||
    input[3] !== inputSize
  ) {
    throw new ModelContractError(
      `model input "${INPUT_NAME}" must be [N,3,${inputSize},${inputSize}] with a dynamic batch, got [${input.join(",")}]`,
    );
  }
  const score = tensorShape(session.outputMetadata, SCORE_NAME);
  if (score.length !== 1 || !isDynamic(score[0])) {
    throw new ModelContractError(`model output "${SCORE_NAME}" must be [N], got [${score.join(",")}]`);
  }
  const gradcam = tensorShape(session.outputMetadata, GRADCAM_NAME);
  const grid = gradcam[1];
  if (
    gradcam.length !== 3 ||
    !isDynamic(gradcam[0]) ||
    typeof grid !== "number" ||
    gradcam[2] !== grid ||
    grid < 1
  ) {
    throw new ModelContractError(
      `model output "${GRADCAM_NAME}" must be [N,G,G], got [${gradcam.join(",")}]`,
    );
  }
  return grid;
}

/**
 * A loaded ResMem-Net ONNX model: validated metadata and signature, one ONNX Runtime session on
 * the chosen execution provider, and a batched `run`.
 */
export class ModelRuntime {
  readonly info: ModelInfo;
  private readonly session: ort.InferenceSession;
  private closed?: Promise<void>;

  private constructor(info: ModelInfo, session: ort.InferenceSession) {
    this.info = info;
    this.session = session;
  }

  /** Loads and validates a model file; throws {@link ModelContractError} when it breaks the contract. */
  static async load(path: string, options: ModelRuntimeOptions = {}): Promise<ModelRuntime> {
    const logger = options.logger ?? silentLogger;
    const bytes = await readFile(path);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const metadata = parseModelMetadata(readOnnxMetadataProps(bytes));
    const spin = options.threadSpinning ? "1" : "0";

    const sessionOptions = (provider: ExecutionProviderName): ort.InferenceSession.SessionOptions => ({
      // deviceId is the only CUDA option onnxruntime-node's binding reads (it leaves cuDNN's
      // convolution search, workspace and TF32 at ONNX Runtime's defaults).
      executionProviders: [
        provider === "cuda" ? { name: "cuda", deviceId: options.cudaDeviceId ?? 0 } : provider,
      ],
      graphOptimizationLevel: "all",
      // Inference runs one batch at a time per session; parallelism comes from intra-op threads.
      executionMode: "sequential",
      // ONNX Runtime prints its own errors when an accelerator library is missing; we log the
      // reason once ourselves (execution-provider.ts), so keep probing quiet.
      ...(provider !== "cpu" ? { logSeverityLevel: 4 as const } : {}),
      ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads, interOpNumThreads: 1 } : {}),
      // Flattened by the Node binding into session config keys "session.intra_op.allow_spinning" etc.
      extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
    });
    const { provider, value: session } = await firstWorkingProvider(
      options.provider ?? "auto",
      (p) => ort.InferenceSession.create(bytes, sessionOptions(p)),
      logger,
    );
    try {
      const gridSize = checkSignature(session, metadata.inputSize);
      const info: ModelInfo = { ...metadata, sha256, path, provider, gridSize };
      logger.info("model loaded", {
        name: info.name,
        version: info.version,
        sha256,
        provider,
        trained: info.trained,
      });
      return new ModelRuntime(info, session);
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /** Elements of one preprocessed image: 3 × inputSize × inputSize. */
  get imageElements(): number {
    return 3 * this.info.inputSize * this.info.inputSize;
  }

  /**
   * Runs one batch. `input` holds `count` preprocessed images back to back (NCHW float32);
   * results come back in the same order.
   */
  async run(input: Float32Array, count: number): Promise<ModelOutput[]> {
    if (count < 1 || input.length !== count * this.imageElements) {
      throw new RangeError(
        `expected ${count} images of ${this.imageElements} floats, got ${input.length} floats`,
      );
    }
    const size = this.info.inputSize;
    const feeds = { [INPUT_NAME]: new ort.Tensor("float32", input, [count, 3, size, size]) };
    const results = await this.session.run(feeds);
    const scores = results[SCORE_NAME]?.data as Float32Array;
    const cams = results[GRADCAM_NAME]?.data as Float32Array;
    const cells = this.info.gridSize * this.info.gridSize;
    const outputs: ModelOutput[] = [];
    for (let i = 0; i < count; i++) {
      // Copy out of ORT's output buffer so callers may keep one image's grid without pinning the batch.
      outputs.push({ score: scores[i] as number, gradcam: cams.slice(i * cells, (i + 1) * cells) });
    }
    for (const tensor of Object.values(results)) tensor.dispose?.();
    return outputs;
  }

  /** Releases the session. Idempotent: later calls return the same promise. */
  close(): Promise<void> {
    this.closed ??= this.session.release();
    return this.closed;
  }
}

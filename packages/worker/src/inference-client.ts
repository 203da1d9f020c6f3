import type { MessagePort } from "node:worker_threads";
import type { InferReply, InferRequest } from "./inference-protocol.js";
import { ThreadClient } from "./thread-channel.js";

/** Spare tensors kept per client: about the images one pipeline thread has waiting at once. */
const MAX_SPARE_TENSORS = 16;

/**
 * One thread's end of a port into the inference engine (see InferenceEngine.connect): submits
 * one image's normalised tensor and resolves with its own outputs once its batch has run.
 */
export class InferenceClient {
  private readonly channel: ThreadClient<InferRequest, InferReply>;
  /** Tensors the engine handed back, reused for later images: no 600 KB allocation per image. */
  private readonly spare: Float32Array[] = [];

  constructor(
    private readonly port: MessagePort,
    private readonly imageElements: number,
  ) {
    this.channel = new ThreadClient<InferRequest, InferReply>(port);
  }

  /** A tensor for one image's model input: one the engine handed back, or a new one. */
  inputTensor(): Float32Array {
    return this.spare.pop() ?? new Float32Array(this.imageElements);
  }

  /**
   * Scores one image given as its CHW float32 model input ({@link rgbToTensor}). The tensor is
   * transferred: the caller must not use it afterwards (it comes back for {@link inputTensor}).
   * A wrong size rejects this image only.
   */
  async infer(input: Float32Array): Promise<InferReply> {
    if (input.length !== this.imageElements) {
      throw new RangeError(`expected ${this.imageElements} floats per image, got ${input.length}`);
    }
    const reply = await this.channel.request({ input }, [input.buffer as ArrayBuffer]);
    if (this.spare.length < MAX_SPARE_TENSORS) this.spare.push(reply.input);
    return reply;
  }

  /** Fails what is outstanding (the engine has gone) and closes the port. */
  close(error = new Error("inference client closed")): void {
    this.channel.failAll(error);
    this.port.close();
  }
}

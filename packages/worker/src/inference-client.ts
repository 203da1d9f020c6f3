import type { MessagePort } from "node:worker_threads";
import type { InferReply, InferRequest } from "./inference-protocol.js";
import { ThreadClient } from "./thread-channel.js";

/**
 * One thread's end of a port into the inference engine (see InferenceEngine.connect): submits
 * one image's normalised tensor and resolves with its own outputs once its batch has run.
 */
export class InferenceClient {
  private readonly channel: ThreadClient<InferRequest, InferReply>;

  constructor(
    private readonly port: MessagePort,
    private readonly imageElements: number,
  ) {
    this.channel = new ThreadClient<InferRequest, InferReply>(port);
  }

  /**
   * Scores one image given as its CHW float32 model input ({@link rgbToTensor}). The tensor is
   * transferred: the caller must not use it afterwards. A wrong size rejects this image only.
   */
  infer(input: Float32Array): Promise<InferReply> {
    if (input.length !== this.imageElements) {
      return Promise.reject(
        new RangeError(`expected ${this.imageElements} floats per image, got ${input.length}`),
      );
    }
    return this.channel.request({ input }, [input.buffer as ArrayBuffer]);
  }

  /** Fails what is outstanding (the engine has gone) and closes the port. */
  close(error = new Error("inference client closed")): void {
    this.channel.failAll(error);
    this.port.close();
  }
}

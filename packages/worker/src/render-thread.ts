/**
 * Entry of a heatmap render thread (see render-pool.ts). Rendering's per-pixel upsample and
 * blend run in JavaScript: on the main thread they would cap a worker at the speed of one core
 * however many cores and however fast a GPU it has (measured on a 16-core GPU machine: ~47
 * images/s with the engine idle half the time). Here they run beside the main thread.
 */
import { parentPort } from "node:worker_threads";
import { renderHeatmap } from "./heatmap.js";
import type { RenderReply, RenderRequest } from "./render-protocol.js";

const port = parentPort;
if (!port) throw new Error("render-thread.js must run as a worker thread");

let rendering = 0;
let closing = false;
// Close only once the renders already asked for have replied.
const closeWhenIdle = () => {
  if (closing && rendering === 0) port.close();
};

port.on("message", async (request: RenderRequest) => {
  if (request.kind === "close") {
    closing = true;
    closeWhenIdle();
    return;
  }
  rendering++;
  let reply: RenderReply;
  try {
    const { data, width, height } = request.image;
    const png = await renderHeatmap(
      { data: Buffer.from(data.buffer, data.byteOffset, data.byteLength), width, height },
      request.gradcam,
      request.gridSize,
      request.options,
    );
    reply = { kind: "rendered", id: request.id, png };
  } catch (error) {
    reply = {
      kind: "render-failed",
      id: request.id,
      error: {
        name: error instanceof Error ? error.name : "Error",
        code: (error as { code?: unknown }).code as string | undefined,
        reason: (error as { reason?: unknown }).reason as string | undefined,
        message: error instanceof Error ? error.message : String(error),
      },
    };
  }
  port.postMessage(reply);
  rendering--;
  closeWhenIdle();
});

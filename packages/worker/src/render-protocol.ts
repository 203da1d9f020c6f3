import type { HeatmapOptions } from "./heatmap.js";

/** Messages from the main thread to a render thread. */
export type RenderRequest =
  | {
      kind: "render";
      id: number;
      /** The decoded image (copied to the thread), drawn on in the thread. */
      image: { data: Uint8Array; width: number; height: number };
      gradcam: Float32Array;
      gridSize: number;
      options: HeatmapOptions;
    }
  | { kind: "close" };

/** Messages from a render thread back to the main thread. */
export type RenderReply =
  | { kind: "rendered"; id: number; png: Uint8Array }
  | {
      kind: "render-failed";
      id: number;
      error: { name: string; code?: string | undefined; reason?: string | undefined; message: string };
    };

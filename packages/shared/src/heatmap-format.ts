/**
 * How a heatmap overlay is stored. `jpeg` (the default) costs a fraction of PNG's CPU and bytes
 * on photographic overlays; `png` is lossless; `none` renders and writes nothing (scores only;
 * the record keeps the Grad-CAM grid).
 */
export const HEATMAP_FORMATS = ["jpeg", "png", "webp", "none"] as const;
export type HeatmapFormat = (typeof HEATMAP_FORMATS)[number];

/** A format that writes a file. */
export type HeatmapFileFormat = Exclude<HeatmapFormat, "none">;

const FILES: Record<HeatmapFileFormat, { extension: string; contentType: string }> = {
  jpeg: { extension: ".jpg", contentType: "image/jpeg" },
  png: { extension: ".png", contentType: "image/png" },
  webp: { extension: ".webp", contentType: "image/webp" },
};

/** The heatmap's file name suffix after the image's name: `<name>.heatmap.jpg`, `.png`, `.webp`. */
export function heatmapSuffix(format: HeatmapFileFormat): string {
  return `.heatmap${FILES[format].extension}`;
}

export function heatmapContentType(format: HeatmapFileFormat): string {
  return FILES[format].contentType;
}

export function isHeatmapFormat(value: unknown): value is HeatmapFormat {
  return typeof value === "string" && (HEATMAP_FORMATS as readonly string[]).includes(value);
}

#!/usr/bin/env node
// Heatmap rendering cost by PNG zlib level: CPU time per image (decode + blend + encode, the
// whole renderHeatmap) and PNG size, on the benchmark images, in one process with one libvips
// thread. CPU time, not wall time, so other load on the machine matters less.
//
//   node bench/heatmap-png-level.mjs [--images 40] [--size 640x480] [--levels 1,2,3,6] [--json]
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { renderHeatmap } from "@memscore/worker";
import sharp from "sharp";
import { benchImages } from "./lib/bench-images.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";

const { values } = parseArgs({
  options: {
    images: { type: "string", default: "40" },
    size: { type: "string", default: "640x480" },
    levels: { type: "string", default: "1,2,3,6" },
    json: { type: "boolean", default: false },
  },
});
sharp.concurrency(1);
const [width, height] = values.size.split("x").map(Number);
const { dir, files } = await benchImages(Number(values.images), width, height);
const bodies = await Promise.all(files.map((f) => readFile(join(dir, f))));
const cam = Float32Array.from({ length: 49 }, (_, i) => (i * 7919) % 13);
const levels = values.levels.split(",").map(Number);
const results = [];
for (const round of [0, 1]) {
  for (const level of levels) {
    const cpu = process.cpuUsage();
    let bytes = 0;
    for (const body of bodies) {
      bytes += (await renderHeatmap(body, cam, 7, { maxPixels: 1e8, maxSide: 1024, compressionLevel: level }))
        .length;
    }
    const used = process.cpuUsage(cpu);
    // The first round warms up caches and JIT; the second is reported.
    if (round === 1) {
      results.push({
        level,
        cpuMsPerImage: (used.user + used.system) / 1000 / bodies.length,
        kBPerImage: bytes / 1024 / bodies.length,
      });
    }
  }
}
const base = results.find((r) => r.level === 6) ?? results[0];
if (values.json)
  console.log(
    JSON.stringify({ benchmark: "heatmap-png-level", machine: describeMachine(), results }, null, 2),
  );
else {
  console.log(`inputs: ${bodies.length} images of ${width}x${height}, levels ${levels.join(",")}`);
  printMachine(describeMachine());
  for (const r of results) {
    console.log(
      `  level ${r.level}: ${r.cpuMsPerImage.toFixed(1)} CPU ms/image (×${(r.cpuMsPerImage / base.cpuMsPerImage).toFixed(2)} of level ${base.level}), ` +
        `${r.kBPerImage.toFixed(0)} kB (×${(r.kBPerImage / base.kBPerImage).toFixed(2)})`,
    );
  }
}

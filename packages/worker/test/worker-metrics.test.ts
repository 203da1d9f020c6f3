import { IMAGE_ERROR_REASONS } from "@memscore/shared";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { WorkerMetrics } from "../src/worker-metrics.js";

describe("WorkerMetrics", () => {
  it("exports every known error reason at 0 before the first error, so rate() and alerts see the series", async () => {
    const registry = new Registry();
    new WorkerMetrics(registry);
    const text = await registry.metrics();
    for (const reason of IMAGE_ERROR_REASONS) {
      expect(text).toContain(`memscore_image_errors_total{reason="${reason}"} 0`);
    }
  });
});

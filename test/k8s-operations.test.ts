import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { v1 } from "kubernetes-models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { type KubernetesObject, renderKustomization } from "./support/kustomize.js";
import { type Container, cpuCores, find, K8S_DIR, overlayNames, podTemplate } from "./support/manifests.js";

const OVERLAYS = await overlayNames();

// What an operator does to a running deployment: tear it down, change its config, share GPUs.
describe("infra/k8s in operation", () => {
  let copy: string;
  beforeAll(async () => {
    copy = await mkdtemp(join(tmpdir(), "memscore-k8s-"));
    await cp(K8S_DIR, copy, { recursive: true });
  });
  afterAll(async () => {
    if (copy) await rm(copy, { recursive: true, force: true });
  });

  it("keeps the namespace out of every overlay, so `kubectl delete -k` leaves it, the Redis volume and the secret", async () => {
    const namespace = await renderKustomization(join(K8S_DIR, "namespace"));
    expect(namespace.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["Namespace/memscore"]);
    for (const overlay of OVERLAYS) {
      const objects = await renderKustomization(join(K8S_DIR, "overlays", overlay));
      // delete -k deletes exactly what the overlay renders.
      const kinds = new Set(objects.map((o) => o.kind));
      for (const kept of ["Namespace", "PersistentVolumeClaim", "Secret"])
        expect(kinds.has(kept), `${overlay} renders a ${kept}`).toBe(false);
      for (const o of objects) expect(o.metadata.namespace).toBe("memscore");
    }
  });

  it("rolls the pods that read a value when it changes in git (config or schedules), and only those", async () => {
    const overlay = join(copy, "overlays/gpu");
    const templates = (objects: KubernetesObject[]) => ({
      worker: JSON.stringify(podTemplate(find(objects, "Deployment", "memscore-worker"))),
      producer: JSON.stringify(podTemplate(find(objects, "Deployment", "memscore-producer"))),
    });
    const before = templates(await renderKustomization(overlay));

    const configFile = join(copy, "base/config.env");
    const config = await readFile(configFile, "utf8");
    await writeFile(configFile, config.replace("MEMSCORE_LOG_LEVEL=info", "MEMSCORE_LOG_LEVEL=debug"));
    const afterConfig = templates(await renderKustomization(overlay));
    expect(afterConfig.worker).not.toBe(before.worker);
    expect(afterConfig.producer).not.toBe(before.producer);

    const schedulesFile = join(copy, "base/schedules.yaml");
    const schedules = await readFile(schedulesFile, "utf8");
    await writeFile(
      schedulesFile,
      schedules.replace(
        "schedules: []",
        'schedules:\n  - name: nightly\n    cron: "0 3 * * *"\n    input: s3://archive/p/\n    outputPrefix: s3://scores/p/',
      ),
    );
    const afterSchedules = templates(await renderKustomization(overlay));
    expect(afterSchedules.producer).not.toBe(afterConfig.producer);
    expect(afterSchedules.worker).toBe(afterConfig.worker);
  });

  it("ships a time-slicing example whose GPU shares match the CPU the GPU workers ask for", async () => {
    const file = join(K8S_DIR, "gpu-sharing/time-slicing-config.yaml");
    const configMap = parseYaml(await readFile(file, "utf8")) as KubernetesObject & {
      data: Record<string, string>;
    };
    expect(() => new v1.ConfigMap(configMap as never).validate()).not.toThrow();
    const plugin = parseYaml(configMap.data.any as string) as {
      version: string;
      sharing: { timeSlicing: { resources: { name: string; replicas: number }[] } };
    };
    expect(plugin.version).toBe("v1");
    const [resource] = plugin.sharing.timeSlicing.resources;
    const objects = await renderKustomization(join(K8S_DIR, "overlays/gpu"));
    const worker = podTemplate(find(objects, "Deployment", "memscore-worker")).spec
      .containers[0] as Container;
    // The shares advertised per GPU are what the worker pods ask for.
    expect(Object.keys(worker.resources?.limits ?? {})).toContain(resource?.name);
    // The example is for 8-vCPU single-GPU nodes (allocatable below 8): every share's worker fits.
    expect(
      (resource?.replicas ?? 0) * (cpuCores(worker.resources?.requests?.cpu) as number),
    ).toBeLessThanOrEqual(7);
    expect(resource?.replicas).toBeGreaterThan(1);
  });
});

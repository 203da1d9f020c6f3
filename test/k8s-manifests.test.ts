import { spawnSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { kedaSh } from "@kubernetes-models/keda";
import { monitoringCoreosCom } from "@kubernetes-models/prometheus-operator";
import {
  CONFIG_ENV_NAMES,
  createMetricsRegistry,
  QUEUE_JOB_STATES,
  resolveConfig,
  startOpsServer,
} from "@memscore/shared";
import { apps, networkingK8sIo, v1 } from "kubernetes-models";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI_BIN } from "./support/cli.js";
import { type KubernetesObject, renderKustomization } from "./support/kustomize.js";
import { typeCheckManifests } from "./support/manifest-types.js";

const ROOT = new URL("..", import.meta.url).pathname;
const OVERLAYS = ["cpu", "gpu"] as const;

/** Schema-checked models of every kind the manifests may use, by `apiVersion/kind`. */
const MODELS: Record<string, { validate(): void } & (new (data: object) => { validate(): void })> = {};
for (const model of [
  v1.Namespace,
  v1.ServiceAccount,
  v1.ConfigMap,
  v1.Secret,
  v1.Service,
  apps.v1.Deployment,
  apps.v1.StatefulSet,
  networkingK8sIo.v1.NetworkPolicy,
  kedaSh.v1alpha1.ScaledObject,
  monitoringCoreosCom.v1.PodMonitor,
  monitoringCoreosCom.v1.ServiceMonitor,
] as unknown as ({ apiVersion: string; kind: string } & (new (data: object) => { validate(): void }))[]) {
  MODELS[`${model.apiVersion}/${model.kind}`] = model as never;
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { limits?: Record<string, string | number> };
}

interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: { containers: Container[]; terminationGracePeriodSeconds?: number };
}

const find = (objects: KubernetesObject[], kind: string, name: string) => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};
const podTemplate = (o: KubernetesObject) => (o.spec as { template: PodTemplate }).template;
const memscoreContainers = (objects: KubernetesObject[]) =>
  objects
    .filter((o) => o.kind === "Deployment")
    .flatMap((o) => podTemplate(o).spec.containers.map((c) => ({ owner: o, template: podTemplate(o), c })));
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The `memscore_*` names a TypeScript source file registers (`name: "memscore_..."`). */
async function metricNamesInCode(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const pkg of await readdir(join(ROOT, "packages"))) {
    const src = join(ROOT, "packages", pkg, "src");
    for (const file of await readdir(src).catch(() => [] as string[])) {
      if (!file.endsWith(".ts")) continue;
      const text = await readFile(join(src, file), "utf8");
      for (const m of text.matchAll(/"(memscore_[a-z0-9_]+)"/g)) names.add(m[1] as string);
    }
  }
  return names;
}

describe.each(OVERLAYS)("infra/k8s/overlays/%s", (overlay) => {
  let objects: KubernetesObject[];
  beforeAll(async () => {
    objects = await renderKustomization(join(ROOT, "infra/k8s/overlays", overlay));
  });

  it("renders only known kinds, each valid against its Kubernetes, KEDA or Prometheus Operator schema", () => {
    expect(objects.length).toBeGreaterThan(5);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.apiVersion} ${o.kind} ${o.metadata.name} has no schema here`).toBeDefined();
      const model = new (Model as new (data: object) => { validate(): void })(o);
      expect(() => model.validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
      if (o.kind !== "Namespace")
        expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe("memscore");
    }
  });

  it("has no unknown or misspelt fields (typed against the same models)", () => {
    expect(typeCheckManifests(objects)).toEqual([]);
  });

  it("wires workers and producer to the config, the Redis secret and the metrics port the code uses", () => {
    const config = find(objects, "ConfigMap", "memscore-config").data as Record<string, string>;
    const envNames = new Set(Object.values(CONFIG_ENV_NAMES));
    for (const key of Object.keys(config)) expect(envNames, `ConfigMap key ${key}`).toContain(key);
    const defaults = resolveConfig({});
    expect(Number(config.MEMSCORE_METRICS_PORT)).toBe(defaults.metricsPort);
    expect(config.MEMSCORE_METRICS_HOST).toBe("0.0.0.0");

    const containers = memscoreContainers(objects);
    expect(containers.map(({ c }) => c.name).sort()).toEqual(["producer", "worker"]);
    for (const { c } of containers) {
      expect(c.envFrom?.map((e) => e.configMapRef?.name)).toEqual(["memscore-config"]);
      const literals = Object.fromEntries(
        (c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
      );
      for (const name of Object.keys(literals)) {
        if (name !== "UV_THREADPOOL_SIZE") expect(envNames, `${c.name} env ${name}`).toContain(name);
      }
      // The process would start with this environment: every value parses.
      expect(() =>
        resolveConfig({ ...config, ...literals, REDIS_URL: "redis://:pw@memscore-redis:6379" }),
      ).not.toThrow();
      expect(c.env?.find((e) => e.name === "REDIS_URL")).toMatchObject({
        valueFrom: { secretKeyRef: { name: "memscore-redis", key: "url" } },
      });
      const metricsPort = c.ports?.find((p) => p.name === "metrics");
      expect(metricsPort?.containerPort).toBe(defaults.metricsPort);
      expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "metrics" });
      expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "metrics" });
    }
  });

  it("gives workers a grace period longer than preStop + drain + hand-back", () => {
    const worker = podTemplate(find(objects, "Deployment", "memscore-worker"));
    const c = worker.spec.containers[0] as Container;
    const args = c.args ?? [];
    const drainMs = Number(args[args.indexOf("--shutdown-timeout") + 1]);
    const preStop = Number(c.lifecycle?.preStop?.exec?.command.at(-1));
    expect(drainMs).toBeGreaterThan(0);
    // Forced stop hands chunks back within 5 s (workerCommand's forced timeout).
    expect(worker.spec.terminationGracePeriodSeconds).toBeGreaterThan(preStop + drainMs / 1000 + 5);
  });

  it("scales workers with KEDA on queue metrics the code exports, and scrapes every memscore pod", async () => {
    const scaled = find(objects, "ScaledObject", "memscore-worker") as KubernetesObject & {
      spec: { scaleTargetRef: { name: string }; triggers: { type: string; metadata: { query: string } }[] };
    };
    find(objects, "Deployment", scaled.spec.scaleTargetRef.name);
    expect(find(objects, "Deployment", "memscore-worker").spec).not.toHaveProperty("replicas");
    const names = await metricNamesInCode();
    for (const trigger of scaled.spec.triggers) {
      expect(trigger.type).toBe("prometheus");
      const used = [...trigger.metadata.query.matchAll(/memscore_[a-z0-9_]+/g)].map((m) => m[0]);
      expect(used.length).toBeGreaterThan(0);
      for (const name of used) expect(names, `metric ${name} in the KEDA query`).toContain(name);
      const states = /state=~"([^"]+)"/.exec(trigger.metadata.query)?.[1]?.split("|") ?? [];
      for (const state of states) expect(QUEUE_JOB_STATES).toContain(state);
      expect(trigger.metadata.query).toContain(`queue="${resolveConfig({}).queueName}"`);
    }

    const monitor = find(objects, "PodMonitor", "memscore") as KubernetesObject & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        podMetricsEndpoints: { port: string; path: string }[];
      };
    };
    for (const { template, c } of memscoreContainers(objects)) {
      expect(selects(monitor.spec.selector.matchLabels, template.metadata.labels), c.name).toBe(true);
      for (const endpoint of monitor.spec.podMetricsEndpoints)
        expect(c.ports?.map((p) => p.name)).toContain(endpoint.port);
    }
  });

  it("serves every probe and scrape path from the real metrics/health server", async () => {
    const paths = new Set<string>();
    for (const { c } of memscoreContainers(objects)) {
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        if (probe?.httpGet) paths.add(probe.httpGet.path);
      }
    }
    const monitor = find(objects, "PodMonitor", "memscore").spec as {
      podMetricsEndpoints: { path: string }[];
    };
    for (const endpoint of monitor.podMetricsEndpoints) paths.add(endpoint.path);
    const server = await startOpsServer({ host: "127.0.0.1", port: 0, registry: createMetricsRegistry() });
    try {
      for (const path of paths) expect((await fetch(`${server.url}${path}`)).status, path).toBe(200);
    } finally {
      await server.close();
    }
  });

  it("runs commands and flags that the CLI has", () => {
    for (const { c } of memscoreContainers(objects)) {
      const [command, ...rest] = c.args ?? [];
      const help = spawnSync(process.execPath, [CLI_BIN, command as string, "--help"], { encoding: "utf8" });
      expect(help.status, `${c.name}: memscore ${command} --help`).toBe(0);
      for (const flag of rest.filter((a) => a.startsWith("--"))) expect(help.stdout).toContain(flag);
    }
  });

  it("keeps Redis safe: persistence, noeviction, a password, and only memscore pods may connect", () => {
    const redis = podTemplate(find(objects, "StatefulSet", "memscore-redis"));
    const args = (redis.spec.containers[0] as Container).args ?? [];
    const flag = (name: string) => args[args.indexOf(name) + 1];
    expect(flag("--appendonly")).toBe("yes");
    expect(flag("--maxmemory-policy")).toBe("noeviction");
    expect(flag("--requirepass")).toBe("$(REDIS_PASSWORD)");
    expect(find(objects, "StatefulSet", "memscore-redis").spec).toHaveProperty("volumeClaimTemplates");

    const policy = find(objects, "NetworkPolicy", "memscore-redis").spec as {
      podSelector: { matchLabels: Record<string, string> };
      ingress: { from: { podSelector: { matchExpressions: { key: string; values: string[] }[] } }[] }[];
    };
    expect(selects(policy.podSelector.matchLabels, redis.metadata.labels)).toBe(true);
    const allowed = (labels: Record<string, string>) =>
      policy.ingress.some((rule) =>
        rule.from.some((peer) =>
          peer.podSelector.matchExpressions.every((e) => e.values.includes(labels[e.key] ?? "")),
        ),
      );
    for (const { template, c } of memscoreContainers(objects))
      expect(allowed(template.metadata.labels), c.name).toBe(true);
    expect(
      allowed({ "app.kubernetes.io/name": "something-else", "app.kubernetes.io/component": "worker" }),
    ).toBe(false);
  });

  it(overlay === "gpu" ? "gives each worker one GPU and the CUDA image" : "asks for no GPU anywhere", () => {
    const worker = podTemplate(find(objects, "Deployment", "memscore-worker")).spec
      .containers[0] as Container;
    const provider = worker.env?.find((e) => e.name === "MEMSCORE_PROVIDER")?.value;
    if (overlay === "gpu") {
      expect(worker.resources?.limits?.["nvidia.com/gpu"]).toBe(1);
      expect(worker.image).toMatch(/memscore-worker-gpu:/);
      expect(provider).toBe("cuda");
    } else {
      expect(JSON.stringify(objects)).not.toContain("nvidia.com/gpu");
      expect(worker.image).toMatch(/memscore-service:/);
      expect(provider).toBe("cpu");
    }
  });
});

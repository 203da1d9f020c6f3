import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kedaSh } from "@kubernetes-models/keda";
import { monitoringCoreosCom } from "@kubernetes-models/prometheus-operator";
import { FORCED_STOP_EXIT_MS } from "@memscore/cli";
import { parseScheduleFile } from "@memscore/producer";
import {
  CONFIG_ENV_NAMES,
  createMetricsRegistry,
  QUEUE_JOB_STATES,
  readCpuBudget,
  resolveConfig,
  startOpsServer,
} from "@memscore/shared";
import { apps, networkingK8sIo, policy, v1 } from "kubernetes-models";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI_BIN } from "./support/cli.js";
import { type KubernetesObject, renderKustomization } from "./support/kustomize.js";
import { typeCheckManifests } from "./support/manifest-types.js";
import {
  type Container,
  cpuCores,
  find,
  K8S_DIR,
  memscoreContainers,
  metricNamesInCode,
  overlayNames,
  podTemplate,
  selects,
} from "./support/manifests.js";

const OVERLAYS = await overlayNames();

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
  policy.v1.PodDisruptionBudget,
  kedaSh.v1alpha1.ScaledObject,
  monitoringCoreosCom.v1.PodMonitor,
  monitoringCoreosCom.v1.ServiceMonitor,
] as unknown as ({ apiVersion: string; kind: string } & (new (data: object) => { validate(): void }))[]) {
  MODELS[`${model.apiVersion}/${model.kind}`] = model as never;
}

/** Variables the manifests may set that config.ts does not read: libuv's pool size. */
const NOT_CONFIG_VARIABLES = new Set(["UV_THREADPOOL_SIZE"]);

/** The generated ConfigMap a container's envFrom points at (name with the content hash). */
const envConfigMap = (objects: KubernetesObject[], c: Container) => {
  const name = c.envFrom?.[0]?.configMapRef?.name ?? "";
  return find(objects, "ConfigMap", name).data as Record<string, string>;
};

/** `maxSurge`-style value (count or percentage) resolved against a replica count. */
const scaledValue = (value: string | number, replicas: number, round: (x: number) => number) =>
  typeof value === "number" ? value : round((Number.parseFloat(value) / 100) * replicas);

/** A filesystem root whose cgroup v2 cpu.max says `cores`, as in a pod with that CPU limit. */
async function fakeCgroupRoot(cores: number): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "memscore-pod-cgroup-"));
  await mkdir(join(root, "proc/self"), { recursive: true });
  await mkdir(join(root, "sys/fs/cgroup"), { recursive: true });
  await writeFile(join(root, "proc/self/mountinfo"), "30 1 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n");
  await writeFile(join(root, "proc/self/cgroup"), "0::/\n");
  await writeFile(join(root, "sys/fs/cgroup/cpu.max"), `${Math.round(cores * 100_000)} 100000\n`);
  return root;
}

describe.each(OVERLAYS)("infra/k8s/overlays/%s", (overlay) => {
  let objects: KubernetesObject[];
  beforeAll(async () => {
    objects = await renderKustomization(join(K8S_DIR, "overlays", overlay));
  });

  it("renders only known kinds, each valid against its Kubernetes, KEDA or Prometheus Operator schema", () => {
    expect(objects.length).toBeGreaterThan(5);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.apiVersion} ${o.kind} ${o.metadata.name} has no schema here`).toBeDefined();
      const model = new (Model as new (data: object) => { validate(): void })(o);
      expect(() => model.validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
      expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe("memscore");
    }
  });

  it("has no unknown or misspelt fields (typed against the same models)", () => {
    expect(typeCheckManifests(objects)).toEqual([]);
  });

  it("wires workers and producer to the config, the Redis secret and the metrics port the code uses", () => {
    const envNames = new Set(Object.values(CONFIG_ENV_NAMES));
    const known = (name: string) => envNames.has(name) || NOT_CONFIG_VARIABLES.has(name);
    const defaults = resolveConfig({});
    const containers = memscoreContainers(objects);
    expect(containers.map(({ c }) => c.name).sort()).toEqual(["producer", "worker"]);
    for (const { c } of containers) {
      // Both read one generated ConfigMap, so they agree on every value (the model above all).
      expect(c.envFrom?.map((e) => e.configMapRef?.name)).toEqual([
        expect.stringMatching(/^memscore-config-[a-z0-9]{10}$/),
      ]);
      expect(c.envFrom?.[0]?.configMapRef?.name).toBe(containers[0]?.c.envFrom?.[0]?.configMapRef?.name);
      const config = envConfigMap(objects, c);
      for (const key of Object.keys(config)) expect(known(key), `ConfigMap key ${key}`).toBe(true);
      expect(Number(config.MEMSCORE_METRICS_PORT)).toBe(defaults.metricsPort);
      expect(config.MEMSCORE_METRICS_HOST).toBe("0.0.0.0");
      const literals = Object.fromEntries(
        (c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
      );
      for (const name of Object.keys(literals)) expect(known(name), `${c.name} env ${name}`).toBe(true);
      // The process would start with this environment: every value parses.
      expect(() =>
        resolveConfig({ ...config, ...literals, REDIS_URL: "redis://:pw@memscore-redis:6379" }),
      ).not.toThrow();
      // The model is pinned in the shared ConfigMap only, so no container can disagree on it.
      for (const name of ["MEMSCORE_MODEL", "MEMSCORE_MODEL_SHA256"])
        expect(
          c.env?.map((e) => e.name),
          `${c.name} overrides ${name}`,
        ).not.toContain(name);
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
    // After the drain deadline the stop turns forced, and the process exits within FORCED_STOP_EXIT_MS.
    expect(worker.spec.terminationGracePeriodSeconds).toBeGreaterThan(
      preStop + (drainMs + FORCED_STOP_EXIT_MS) / 1000,
    );
  });

  it("scales workers with KEDA on queue metrics the code exports, and scrapes every memscore pod", async () => {
    const scaled = find(objects, "ScaledObject", "memscore-worker") as KubernetesObject & {
      spec: {
        scaleTargetRef: { name: string };
        fallback?: { replicas: number };
        triggers: { type: string; metadata: { query: string; ignoreNullValues?: string } }[];
      };
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
      // An empty answer or an error must not read as "no backlog" (that kept workers at zero).
      expect(trigger.metadata.ignoreNullValues).toBe("false");
    }
    expect(scaled.spec.fallback).toMatchObject({ replicas: expect.any(Number) });
    expect(scaled.spec.fallback?.replicas).toBeGreaterThan(0);

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

  it("rolls workers out without a spare GPU or node, and lets drains evict a quarter at a time", () => {
    const worker = find(objects, "Deployment", "memscore-worker");
    const { strategy } = worker.spec as {
      strategy: {
        type: string;
        rollingUpdate: { maxSurge: string | number; maxUnavailable: string | number };
      };
    };
    const { maxReplicaCount } = find(objects, "ScaledObject", "memscore-worker").spec as {
      maxReplicaCount: number;
    };
    expect(strategy.type).toBe("RollingUpdate");
    for (let replicas = 1; replicas <= maxReplicaCount; replicas++) {
      // As the Deployment controller resolves them: surge rounds up, unavailable down, and
      // 0 and 0 become unavailable 1. A surge pod would need a free GPU that a full pool lacks.
      const surge = scaledValue(strategy.rollingUpdate.maxSurge, replicas, Math.ceil);
      let unavailable = scaledValue(strategy.rollingUpdate.maxUnavailable, replicas, Math.floor);
      if (surge === 0 && unavailable === 0) unavailable = 1;
      expect(surge, `maxSurge at ${replicas} replicas`).toBe(0);
      expect(unavailable, `maxUnavailable at ${replicas} replicas`).toBeGreaterThan(0);
    }

    const budgets = objects.filter((o) => o.kind === "PodDisruptionBudget");
    const budgetOf = (owner: string) => {
      const labels = podTemplate(find(objects, "Deployment", owner)).metadata.labels;
      const matching = budgets.filter((b) =>
        selects(
          (b.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
          labels,
        ),
      );
      expect(matching, owner).toHaveLength(1);
      return matching[0]?.spec as {
        maxUnavailable?: string | number;
        minAvailable?: number;
        unhealthyPodEvictionPolicy: string;
      };
    };
    const workerBudget = budgetOf("memscore-worker");
    for (let replicas = 1; replicas <= maxReplicaCount; replicas++) {
      // A budget's percentage rounds up: a node drain can always evict at least one worker.
      expect(scaledValue(workerBudget.maxUnavailable ?? 0, replicas, Math.ceil)).toBeGreaterThan(0);
    }
    const producerBudget = budgetOf("memscore-producer");
    const producerReplicas = (find(objects, "Deployment", "memscore-producer").spec as { replicas: number })
      .replicas;
    expect(producerBudget.minAvailable).toBeGreaterThan(0);
    expect(producerBudget.minAvailable).toBeLessThan(producerReplicas);
    // A wedged or unready pod never blocks a drain.
    for (const b of [workerBudget, producerBudget]) expect(b.unhealthyPodEvictionPolicy).toBe("AlwaysAllow");
  });

  it("gives every memscore pod a CPU limit, from which the worker sizes its threads", async () => {
    for (const { c } of memscoreContainers(objects)) {
      const limit = cpuCores(c.resources?.limits?.cpu);
      const request = cpuCores(c.resources?.requests?.cpu);
      expect(limit, `${c.name} CPU limit`).toBeGreaterThan(0);
      expect(request, `${c.name} CPU request`).toBeLessThanOrEqual(limit as number);
      // What the worker reads inside such a pod (cgroup v2 cpu.max) and the thread count it picks.
      const root = await fakeCgroupRoot(limit as number);
      try {
        expect(readCpuBudget({ root, cpuCount: 64 }).cores).toBe(Math.floor(limit as number));
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    }
    if (gpu) {
      const worker = podTemplate(find(objects, "Deployment", "memscore-worker")).spec
        .containers[0] as Container;
      // Two GPU workers fit an 8-vCPU single-GPU node, whose allocatable CPU is below 8.
      expect(2 * (cpuCores(worker.resources?.requests?.cpu) as number)).toBeLessThanOrEqual(7);
    }
  });

  it("mounts the schedule file the producer applies, and it is a valid one", () => {
    const producer = find(objects, "Deployment", "memscore-producer");
    const template = podTemplate(producer);
    const c = template.spec.containers[0] as Container;
    const args = c.args ?? [];
    const path = args[args.indexOf("--schedules") + 1] as string;
    expect(args).toContain("--schedules");
    const mount = c.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
    const volume = template.spec.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.configMap?.name).toMatch(/^memscore-schedules-[a-z0-9]{10}$/);
    const data = find(objects, "ConfigMap", volume?.configMap?.name as string).data as Record<string, string>;
    const text = data[path.slice((mount?.mountPath.length ?? 0) + 1)];
    expect(text, `${path} in the ConfigMap`).toBeDefined();
    expect(() => parseScheduleFile(text as string, path)).not.toThrow();
  });

  it("exports Redis metrics to the same PodMonitor, reachable through the NetworkPolicy", () => {
    const redis = podTemplate(find(objects, "StatefulSet", "memscore-redis"));
    const monitor = find(objects, "PodMonitor", "memscore").spec as {
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: { port: string }[];
    };
    expect(selects(monitor.selector.matchLabels, redis.metadata.labels)).toBe(true);
    const exporter = redis.spec.containers.find((c) => c.ports?.some((p) => p.name === "metrics"));
    expect(exporter?.image).toMatch(/^oliver006\/redis_exporter:v\d+\.\d+\.\d+$/);
    const port = exporter?.ports?.find((p) => p.name === "metrics")?.containerPort;
    const policy = find(objects, "NetworkPolicy", "memscore-redis").spec as {
      ingress: { from?: unknown[]; ports: { port: number }[] }[];
    };
    expect(
      policy.ingress.some((rule) => rule.from === undefined && rule.ports.some((p) => p.port === port)),
    ).toBe(true);
  });

  it("keeps Redis safe: persistence, noeviction, a password, and only memscore pods may connect", () => {
    const redis = podTemplate(find(objects, "StatefulSet", "memscore-redis"));
    const args = (redis.spec.containers[0] as Container).args ?? [];
    const flag = (name: string) => args[args.indexOf(name) + 1];
    expect(flag("--appendonly")).toBe("yes");
    expect(flag("--maxmemory-policy")).toBe("noeviction");
    expect(flag("--requirepass")).toBe("$(REDIS_PASSWORD)");
    // Append-only file only: an empty save list turns RDB snapshots off.
    expect(flag("--save")).toBe("");
    const statefulSet = find(objects, "StatefulSet", "memscore-redis").spec as {
      volumeClaimTemplates: unknown[];
      persistentVolumeClaimRetentionPolicy: { whenDeleted: string; whenScaled: string };
    };
    expect(statefulSet.volumeClaimTemplates).toHaveLength(1);
    // `kubectl delete -k` of the overlay deletes the StatefulSet, never its volume.
    expect(statefulSet.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: "Retain",
      whenScaled: "Retain",
    });

    const policy = find(objects, "NetworkPolicy", "memscore-redis").spec as {
      podSelector: { matchLabels: Record<string, string> };
      ingress: { from?: { podSelector: { matchExpressions: { key: string; values: string[] }[] } }[] }[];
    };
    expect(selects(policy.podSelector.matchLabels, redis.metadata.labels)).toBe(true);
    const allowed = (labels: Record<string, string>) =>
      policy.ingress.some((rule) =>
        rule.from?.some((peer) =>
          peer.podSelector.matchExpressions.every((e) => e.values.includes(labels[e.key] ?? "")),
        ),
      );
    for (const { template, c } of memscoreContainers(objects))
      expect(allowed(template.metadata.labels), c.name).toBe(true);
    expect(
      allowed({ "app.kubernetes.io/name": "something-else", "app.kubernetes.io/component": "worker" }),
    ).toBe(false);
  });

  const gpu = overlay.startsWith("gpu");
  it(gpu ? "gives each worker one share of a GPU and the CUDA image" : "asks for no GPU anywhere", () => {
    const worker = podTemplate(find(objects, "Deployment", "memscore-worker")).spec
      .containers[0] as Container;
    const provider = worker.env?.find((e) => e.name === "MEMSCORE_PROVIDER")?.value;
    if (gpu) {
      // One unit of one GPU resource: a whole or time-sliced GPU, or one MIG slice.
      const shares = Object.entries(worker.resources?.limits ?? {}).filter(([k]) =>
        k.startsWith("nvidia.com/"),
      );
      expect(shares).toHaveLength(1);
      expect(shares[0]?.[0]).toMatch(
        overlay === "gpu-mig" ? /^nvidia\.com\/mig-\d+g\.\d+gb$/ : /^nvidia\.com\/gpu$/,
      );
      expect(shares[0]?.[1]).toBe(1);
      expect(worker.image).toMatch(/memscore-worker-gpu:/);
      expect(provider).toBe("cuda");
    } else {
      expect(JSON.stringify(objects)).not.toContain("nvidia.com/gpu");
      expect(worker.image).toMatch(/memscore-service:/);
      expect(provider).toBe("cpu");
    }
  });
});

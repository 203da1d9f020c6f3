import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { KubernetesObject } from "./kustomize.js";

/** The repository root. */
export const ROOT = new URL("../..", import.meta.url).pathname;
export const K8S_DIR = join(ROOT, "infra/k8s");

/** The kustomize overlays under infra/k8s/overlays, by directory name. */
export async function overlayNames(): Promise<string[]> {
  const entries = await readdir(join(K8S_DIR, "overlays"), { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}

type Probe = {
  httpGet?: { path: string; port: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
};

/** The parts of a container spec the tests read. */
export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  volumeMounts?: { name: string; mountPath: string }[];
}

export interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: {
    containers: Container[];
    terminationGracePeriodSeconds?: number;
    volumes?: { name: string; configMap?: { name: string } }[];
  };
}

export function find(objects: KubernetesObject[], kind: string, name: string): KubernetesObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
}

export const podTemplate = (o: KubernetesObject): PodTemplate =>
  (o.spec as { template: PodTemplate }).template;

/** Every container of the memscore Deployments (workers and producer), with its owner. */
export const memscoreContainers = (objects: KubernetesObject[]) =>
  objects
    .filter((o) => o.kind === "Deployment")
    .flatMap((o) => podTemplate(o).spec.containers.map((c) => ({ owner: o, template: podTemplate(o), c })));

/** Every workload (Deployment, StatefulSet) with its pod template. */
export const workloads = (objects: KubernetesObject[]) =>
  objects
    .filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet")
    .map((o) => ({ owner: o, template: podTemplate(o) }));

export const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** A pod name as the controller makes it: Deployment NAME-<template hash>-<5 chars>, StatefulSet NAME-0. */
export function examplePodName(owner: KubernetesObject): string {
  return owner.kind === "StatefulSet"
    ? `${owner.metadata.name}-0`
    : `${owner.metadata.name}-6d9f7c8b5d-x7k2q`;
}

/** CPU quantity ("3", "3500m", 2) in cores. */
export function cpuCores(quantity: string | number | undefined): number | undefined {
  if (quantity === undefined) return undefined;
  const text = String(quantity);
  return text.endsWith("m") ? Number(text.slice(0, -1)) / 1000 : Number(text);
}

/** The `memscore_*` names the TypeScript sources register (`name: "memscore_..."`). */
export async function metricNamesInCode(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const pkg of await readdir(join(ROOT, "packages"))) {
    const src = join(ROOT, "packages", pkg, "src");
    for (const file of await readdir(src).catch(() => [] as string[])) {
      if (!file.endsWith(".ts")) continue;
      for (const m of (await readFile(join(src, file), "utf8")).matchAll(/"(memscore_[a-z0-9_]+)"/g))
        names.add(m[1] as string);
    }
  }
  return names;
}

import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";

/**
 * The subset of kustomize that infra/k8s uses, so manifests can be rendered and validated
 * offline without kubectl or kustomize: `resources` (files and directories), `namespace`,
 * `labels` (metadata only), `images`, strategic-merge `patches` from files, and
 * `configMapGenerator` (envs, files, literals; behavior create or merge) with kustomize's
 * content-hash name suffix and the references to it rewritten. Any other field is refused, so
 * a manifest change that needs more fails here loudly instead of rendering wrong.
 */

/** A rendered Kubernetes object. */
export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const SUPPORTED_FIELDS = new Set([
  "apiVersion",
  "kind",
  "namespace",
  "labels",
  "resources",
  "images",
  "patches",
  "configMapGenerator",
]);

/** Kinds without a namespace: the namespace transformer leaves them alone. */
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PersistentVolume",
  "StorageClass",
  "PriorityClass",
  "ClusterTriggerAuthentication",
]);

/** Workload kinds whose pod-spec lists merge by key (built-in schemas); custom resources replace lists. */
const BUILT_IN_WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"]);

/** Strategic-merge keys of the pod-spec lists the manifests patch. */
const MERGE_KEYS: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  ports: "containerPort",
  imagePullSecrets: "name",
};

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

async function readYamlDocuments(path: string): Promise<JsonObject[]> {
  const docs = parseAllDocuments(await readFile(path, "utf8"));
  const out: JsonObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as Json;
    if (value === null || value === undefined) continue;
    if (!isObject(value)) throw new Error(`${path}: a document is not a mapping`);
    out.push(value);
  }
  return out;
}

/** Strategic merge of `patch` into `base` (new object; inputs untouched). */
export function strategicMerge(base: Json, patch: Json, keyedLists: boolean, field = ""): Json {
  if (isObject(base) && isObject(patch)) {
    const out: JsonObject = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete out[key];
      else out[key] = key in base ? strategicMerge(base[key] as Json, value, keyedLists, key) : value;
    }
    return out;
  }
  const mergeKey = keyedLists ? MERGE_KEYS[field] : undefined;
  if (Array.isArray(base) && Array.isArray(patch) && mergeKey) {
    const keyOf = (item: Json) => (isObject(item) ? item[mergeKey] : undefined);
    // As kustomize orders them: the patch's items first (merged with their base item), then the rest.
    const merged = patch.map((item) => {
      const match = base.find((b) => keyOf(b) !== undefined && keyOf(b) === keyOf(item));
      return match === undefined ? item : strategicMerge(match, item, keyedLists);
    });
    const patched = new Set(patch.map(keyOf));
    return [...merged, ...base.filter((b) => !patched.has(keyOf(b)))];
  }
  return patch;
}

/** Applies an `images` entry to every container of every pod template in `value`. */
function setImages(value: Json, images: JsonObject[]): void {
  if (Array.isArray(value)) {
    for (const item of value) setImages(item, images);
    return;
  }
  if (!isObject(value)) return;
  for (const [key, child] of Object.entries(value)) {
    if ((key === "containers" || key === "initContainers") && Array.isArray(child)) {
      for (const container of child) {
        if (!isObject(container) || typeof container.image !== "string") continue;
        const name = container.image.split("@")[0]?.replace(/:[^/:]+$/, "");
        const entry = images.find((i) => i.name === name);
        if (!entry) continue;
        const newName = typeof entry.newName === "string" ? entry.newName : (name as string);
        if (typeof entry.digest === "string") container.image = `${newName}@${entry.digest}`;
        else if (typeof entry.newTag === "string") container.image = `${newName}:${entry.newTag}`;
        else container.image = newName;
      }
    }
    setImages(child, images);
  }
}

const objectId = (o: KubernetesObject) =>
  `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

/** ConfigMaps made by a configMapGenerator: their names get the content hash once the whole build is done. */
const generated = new WeakSet<object>();

/** `KEY=VALUE` lines of an env file, as kustomize reads them (values literal, `#` comments). */
function envFileEntries(text: string, file: string): [string, string][] {
  const entries: [string, string][] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/^\s+/, "").replace(/\r$/, "");
    if (line === "" || line.startsWith("#")) continue;
    const at = line.indexOf("=");
    // Without "=", kustomize reads the value from its own environment: not reproducible.
    if (at <= 0) throw new Error(`${file}: "${line}" is not KEY=VALUE`);
    entries.push([line.slice(0, at), line.slice(at + 1)]);
  }
  return entries;
}

async function generateConfigMap(dir: string, file: string, entry: Json): Promise<KubernetesObject> {
  if (!isObject(entry) || typeof entry.name !== "string")
    throw new Error(`${file}: a configMapGenerator entry needs a name`);
  for (const key of Object.keys(entry)) {
    if (!["name", "envs", "files", "literals", "behavior"].includes(key))
      throw new Error(`${file}: configMapGenerator field "${key}" is not supported here`);
  }
  const data: Record<string, string> = {};
  for (const env of (entry.envs as Json[] | undefined) ?? []) {
    const path = resolve(dir, String(env));
    for (const [k, v] of envFileEntries(await readFile(path, "utf8"), path)) data[k] = v;
  }
  for (const f of (entry.files as Json[] | undefined) ?? []) {
    const path = resolve(dir, String(f));
    data[basename(path)] = await readFile(path, "utf8");
  }
  for (const literal of (entry.literals as Json[] | undefined) ?? []) {
    const at = String(literal).indexOf("=");
    if (at <= 0) throw new Error(`${file}: literal "${String(literal)}" is not KEY=VALUE`);
    data[String(literal).slice(0, at)] = String(literal).slice(at + 1);
  }
  const configMap: KubernetesObject = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: entry.name },
    data,
  };
  generated.add(configMap);
  return configMap;
}

/** Go's encoding/json of a value with sorted keys and HTML-safe escapes, as kustomize hashes it. */
function goJson(value: Json): string {
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${goJson(k)}:${goJson(value[k] as Json)}`).join(",")}}`;
  }
  if (Array.isArray(value)) return `[${value.map(goJson).join(",")}]`;
  return JSON.stringify(value)
    .replaceAll("<", "\\u003c")
    .replaceAll(">", "\\u003e")
    .replaceAll("&", "\\u0026")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

/**
 * kustomize's name suffix of a ConfigMap: the sha256 of {data, kind, name}, 10 characters, no
 * vowels. kustomize 5 (checked against `kubectl kustomize`, kustomize v5.5.0) hashes with an
 * empty name: two generators with the same data get the same suffix.
 */
export function configMapHash(data: Record<string, string>): string {
  const hex = createHash("sha256")
    .update(goJson({ data, kind: "ConfigMap", name: "" }))
    .digest("hex");
  const swap: Record<string, string> = { "0": "g", "1": "h", "3": "k", a: "m", e: "t" };
  return [...hex.slice(0, 10)].map((c) => swap[c] ?? c).join("");
}

/** Renames generated ConfigMaps to NAME-HASH and points every pod-spec reference at the new name. */
function nameGeneratedConfigMaps(objects: KubernetesObject[]): void {
  const renamed = new Map<string, string>();
  for (const o of objects) {
    if (!generated.has(o)) continue;
    const name = `${o.metadata.name}-${configMapHash(o.data as Record<string, string>)}`;
    renamed.set(`${o.metadata.namespace ?? ""}/${o.metadata.name}`, name);
    o.metadata = { ...o.metadata, name };
  }
  const rewrite = (value: Json, namespace: string): void => {
    if (Array.isArray(value)) {
      for (const item of value) rewrite(item, namespace);
      return;
    }
    if (!isObject(value)) return;
    for (const [key, child] of Object.entries(value)) {
      // envFrom[].configMapRef, env[].valueFrom.configMapKeyRef, volumes[].configMap, projected sources.
      if ((key === "configMapRef" || key === "configMapKeyRef" || key === "configMap") && isObject(child)) {
        const to = renamed.get(`${namespace}/${String(child.name)}`);
        if (to !== undefined) child.name = to;
      }
      rewrite(child, namespace);
    }
  };
  for (const o of objects) {
    if (!generated.has(o) && BUILT_IN_WORKLOADS.has(o.kind))
      rewrite(o.spec as Json, o.metadata.namespace ?? "");
  }
}

/** Renders the kustomization in `dir` (a directory with kustomization.yaml), as `kubectl kustomize` would. */
export async function renderKustomization(dir: string): Promise<KubernetesObject[]> {
  const objects = await buildKustomization(dir);
  nameGeneratedConfigMaps(objects);
  return objects;
}

/** One kustomization's objects, generated ConfigMaps still under their plain names (overlays may merge into them). */
async function buildKustomization(dir: string): Promise<KubernetesObject[]> {
  const file = join(dir, "kustomization.yaml");
  const [k] = await readYamlDocuments(file);
  if (k?.kind !== "Kustomization") throw new Error(`${file}: not a Kustomization`);
  for (const field of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new Error(`${file}: field "${field}" is not supported here`);
  }

  let objects: KubernetesObject[] = [];
  for (const entry of (k.resources as Json[] | undefined) ?? []) {
    if (typeof entry !== "string") throw new Error(`${file}: resources must be paths`);
    const path = resolve(dir, entry);
    if ((await stat(path)).isDirectory()) objects.push(...(await buildKustomization(path)));
    else objects.push(...((await readYamlDocuments(path)) as unknown as KubernetesObject[]));
  }
  for (const entry of (k.configMapGenerator as Json[] | undefined) ?? []) {
    const made = await generateConfigMap(dir, file, entry);
    const behavior = isObject(entry) && typeof entry.behavior === "string" ? entry.behavior : "create";
    const existing = objects.find((o) => generated.has(o) && o.metadata.name === made.metadata.name);
    if (behavior === "create") {
      if (existing) throw new Error(`${file}: ConfigMap ${made.metadata.name} is generated twice`);
      objects.push(made);
    } else if (behavior === "merge") {
      if (!existing) throw new Error(`${file}: no generated ConfigMap ${made.metadata.name} to merge into`);
      existing.data = {
        ...(existing.data as Record<string, string>),
        ...(made.data as Record<string, string>),
      };
    } else throw new Error(`${file}: configMapGenerator behavior "${behavior}" is not supported here`);
  }
  for (const o of objects) {
    if (typeof o.apiVersion !== "string" || typeof o.kind !== "string" || !o.metadata?.name)
      throw new Error(`${file}: a resource lacks apiVersion, kind or metadata.name`);
  }

  for (const entry of (k.patches as Json[] | undefined) ?? []) {
    if (!isObject(entry) || typeof entry.path !== "string" || Object.keys(entry).length !== 1)
      throw new Error(`${file}: only patches given as { path } (strategic merge) are supported`);
    for (const patch of await readYamlDocuments(resolve(dir, entry.path))) {
      const meta = patch.metadata as JsonObject | undefined;
      const targets = objects.filter(
        (o) =>
          o.kind === patch.kind &&
          o.apiVersion === patch.apiVersion &&
          o.metadata.name === meta?.name &&
          (meta?.namespace === undefined || o.metadata.namespace === meta.namespace),
      );
      if (targets.length !== 1)
        throw new Error(`${entry.path}: patch matches ${targets.length} resources, expected 1`);
      const target = targets[0] as KubernetesObject;
      const merged = strategicMerge(
        target as unknown as Json,
        patch,
        BUILT_IN_WORKLOADS.has(target.kind),
      ) as unknown as KubernetesObject;
      objects = objects.map((o) => (o === target ? merged : o));
    }
  }

  if (k.namespace !== undefined) {
    if (typeof k.namespace !== "string") throw new Error(`${file}: namespace must be a string`);
    for (const o of objects) {
      if (!CLUSTER_SCOPED.has(o.kind)) o.metadata = { ...o.metadata, namespace: k.namespace };
    }
  }

  for (const entry of (k.labels as Json[] | undefined) ?? []) {
    if (!isObject(entry) || !isObject(entry.pairs) || entry.includeSelectors || entry.includeTemplates)
      throw new Error(`${file}: only labels with pairs on metadata are supported`);
    for (const o of objects) {
      o.metadata = {
        ...o.metadata,
        labels: { ...o.metadata.labels, ...(entry.pairs as Record<string, string>) },
      };
    }
  }

  const images = ((k.images as Json[] | undefined) ?? []).filter(isObject);
  if (images.length > 0) for (const o of objects) setImages(o as unknown as Json, images);

  const seen = new Set<string>();
  for (const o of objects) {
    const id = objectId(o);
    if (seen.has(id)) throw new Error(`${file}: ${id} is defined twice`);
    seen.add(id);
  }
  return objects;
}

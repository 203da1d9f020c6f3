import type { KubernetesObject } from "./kustomize.js";
import { examplePodName, selects, workloads } from "./manifests.js";

/**
 * The labels Prometheus attaches to memscore's scrape targets, computed offline from rendered
 * manifests: what the Prometheus Operator makes of a PodMonitor, or what a plain Prometheus
 * makes of a kubernetes_sd pod job and its relabel_configs. Alerts and queries are checked
 * against these, so a matcher that no target can satisfy (a job name that does not exist)
 * fails a test instead of an alert that never fires.
 */

/** One scrape target: its final labels and the workload and container behind it. */
export interface ScrapeTarget {
  labels: Record<string, string>;
  workload: string;
  container: string;
}

/** A Prometheus relabel rule (snake_case as in prometheus.yml, camelCase as in a PodMonitor). */
export interface RelabelRule {
  source_labels?: string[];
  sourceLabels?: string[];
  separator?: string;
  regex?: string;
  target_label?: string;
  targetLabel?: string;
  replacement?: string;
  action?: string;
}

/** Applies relabel rules as Prometheus does (keep, drop, replace); undefined when dropped. */
export function relabel(
  input: Record<string, string>,
  rules: RelabelRule[],
): Record<string, string> | undefined {
  const labels = { ...input };
  for (const rule of rules) {
    const sources = rule.source_labels ?? rule.sourceLabels ?? [];
    const value = sources.map((s) => labels[s] ?? "").join(rule.separator ?? ";");
    const regex = new RegExp(`^(?:${rule.regex ?? "(.*)"})$`);
    const action = (rule.action ?? "replace").toLowerCase();
    const match = regex.exec(value);
    if (action === "keep" && !match) return undefined;
    if (action === "drop" && match) return undefined;
    if (action === "replace" && match) {
      const target = rule.target_label ?? rule.targetLabel;
      if (target === undefined) throw new Error("replace without a target label");
      const replaced = (rule.replacement ?? "$1").replace(/\$\{?(\d+)\}?/g, (_, i) => match[Number(i)] ?? "");
      if (replaced === "") delete labels[target];
      else labels[target] = replaced;
    }
    if (!["keep", "drop", "replace"].includes(action))
      throw new Error(`relabel action ${action} is not modelled`);
  }
  return labels;
}

const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, "_");

/** The __meta_kubernetes_* labels pod discovery gives each named container port of each workload's pod. */
function discoveredPorts(objects: KubernetesObject[]) {
  const out: {
    meta: Record<string, string>;
    workload: string;
    container: string;
    podLabels: Record<string, string>;
  }[] = [];
  for (const { owner, template } of workloads(objects)) {
    const pod = examplePodName(owner);
    for (const c of template.spec.containers) {
      for (const port of c.ports ?? []) {
        const meta: Record<string, string> = {
          __address__: `10.0.0.1:${port.containerPort}`,
          __meta_kubernetes_namespace: owner.metadata.namespace ?? "default",
          __meta_kubernetes_pod_name: pod,
          __meta_kubernetes_pod_phase: "Running",
          __meta_kubernetes_pod_container_name: c.name,
          __meta_kubernetes_pod_container_port_name: port.name ?? "",
          __meta_kubernetes_pod_container_port_number: String(port.containerPort),
        };
        for (const [k, v] of Object.entries(template.metadata.labels)) {
          meta[`__meta_kubernetes_pod_label_${sanitize(k)}`] = v;
          meta[`__meta_kubernetes_pod_labelpresent_${sanitize(k)}`] = "true";
        }
        out.push({
          meta,
          workload: owner.metadata.name,
          container: c.name,
          podLabels: template.metadata.labels,
        });
      }
    }
  }
  return out;
}

const finalLabels = (labels: Record<string, string>) =>
  Object.fromEntries(Object.entries(labels).filter(([k]) => !k.startsWith("__")));

interface PodMonitorSpec {
  jobLabel?: string;
  podTargetLabels?: string[];
  selector: { matchLabels?: Record<string, string> };
  podMetricsEndpoints: { port?: string; relabelings?: RelabelRule[] }[];
}

/**
 * Targets of every PodMonitor in `objects`, as the Prometheus Operator configures them: the
 * monitor's namespace only, its selector and port, labels namespace/container/pod/endpoint,
 * job = the pod's `jobLabel` label (else "NAMESPACE/MONITOR"), then the endpoint's relabelings.
 */
export function podMonitorTargets(objects: KubernetesObject[]): ScrapeTarget[] {
  const targets: ScrapeTarget[] = [];
  for (const monitor of objects.filter((o) => o.kind === "PodMonitor")) {
    const spec = monitor.spec as PodMonitorSpec;
    for (const endpoint of spec.podMetricsEndpoints) {
      for (const port of discoveredPorts(objects)) {
        if (port.meta.__meta_kubernetes_namespace !== monitor.metadata.namespace) continue;
        if (!selects(spec.selector.matchLabels ?? {}, port.podLabels)) continue;
        if (
          endpoint.port !== undefined &&
          port.meta.__meta_kubernetes_pod_container_port_name !== endpoint.port
        )
          continue;
        const labels: Record<string, string> = {
          ...port.meta,
          instance: port.meta.__address__ as string,
          namespace: port.meta.__meta_kubernetes_namespace as string,
          container: port.container,
          pod: port.meta.__meta_kubernetes_pod_name as string,
          job: `${monitor.metadata.namespace}/${monitor.metadata.name}`,
        };
        for (const l of spec.podTargetLabels ?? [])
          if (port.podLabels[l]) labels[sanitize(l)] = port.podLabels[l] as string;
        if (spec.jobLabel && port.podLabels[spec.jobLabel])
          labels.job = port.podLabels[spec.jobLabel] as string;
        if (endpoint.port !== undefined) labels.endpoint = endpoint.port;
        const relabelled = relabel(labels, endpoint.relabelings ?? []);
        if (relabelled)
          targets.push({
            labels: finalLabels(relabelled),
            workload: port.workload,
            container: port.container,
          });
      }
    }
  }
  return targets;
}

interface ScrapeConfig {
  scrape_configs: {
    job_name: string;
    kubernetes_sd_configs?: { role: string }[];
    relabel_configs?: RelabelRule[];
  }[];
}

/** Targets of a prometheus.yml's kubernetes_sd pod jobs over the rendered pods. */
export function scrapeConfigTargets(config: ScrapeConfig, objects: KubernetesObject[]): ScrapeTarget[] {
  const targets: ScrapeTarget[] = [];
  for (const job of config.scrape_configs) {
    if (!job.kubernetes_sd_configs?.some((sd) => sd.role === "pod")) continue;
    for (const port of discoveredPorts(objects)) {
      const relabelled = relabel({ ...port.meta, job: job.job_name }, job.relabel_configs ?? []);
      if (!relabelled) continue;
      const labels = finalLabels({ instance: port.meta.__address__ as string, ...relabelled });
      targets.push({ labels, workload: port.workload, container: port.container });
    }
  }
  return targets;
}

/** A label matcher of a PromQL selector. */
export interface LabelMatcher {
  label: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

/** One vector selector with label matchers: `metric{a="b", c=~"d"}` (metric may be absent). */
export interface Selector {
  metric: string | undefined;
  matchers: LabelMatcher[];
  text: string;
}

const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
const SELECTOR = new RegExp(String.raw`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{((?:[^{}"]|${STRING})*)\}`, "g");
const MATCHER = new RegExp(String.raw`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(${STRING})`, "g");

/**
 * The selectors with label matchers in a PromQL expression. (Bare metric names constrain no
 * label, so there is nothing to check for them.) Enough for the expressions in this repository:
 * braces appear in PromQL only around label matchers.
 */
export function selectorsOf(expr: string): Selector[] {
  return [...expr.matchAll(SELECTOR)].map((m) => ({
    metric: m[1] === "by" || m[1] === "on" || m[1] === "without" || m[1] === "ignoring" ? undefined : m[1],
    matchers: [...(m[2] ?? "").matchAll(MATCHER)].map((x) => ({
      label: x[1] as string,
      op: x[2] as LabelMatcher["op"],
      value: JSON.parse(x[3] as string) as string,
    })),
    text: m[0],
  }));
}

/** Whether a label's value (undefined: absent, i.e. "") satisfies a matcher, as Prometheus decides. */
export function satisfies(matcher: LabelMatcher, value: string | undefined): boolean {
  const v = value ?? "";
  const regex = () => new RegExp(`^(?:${matcher.value})$`).test(v);
  switch (matcher.op) {
    case "=":
      return v === matcher.value;
    case "!=":
      return v !== matcher.value;
    case "=~":
      return regex();
    case "!~":
      return !regex();
  }
}

/** Labels a target carries (as opposed to labels a metric carries, like queue or state). */
export const TARGET_LABELS = new Set([
  "job",
  "instance",
  "namespace",
  "pod",
  "container",
  "endpoint",
  "component",
]);

/** The targets whose labels satisfy every target-label matcher of `selector`. */
export function targetsMatching(selector: Selector, targets: ScrapeTarget[]): ScrapeTarget[] {
  const constraints = selector.matchers.filter((m) => TARGET_LABELS.has(m.label));
  return targets.filter((t) => constraints.every((m) => satisfies(m, t.labels[m.label])));
}

/**
 * Whether a kube-state-metrics selector (matching on the object's namespace, pod and container
 * names) can select one of the rendered pods' containers.
 */
export function kubeStateMatches(selector: Selector, objects: KubernetesObject[]): boolean {
  const value = (label: string) => selector.matchers.filter((m) => m.label === label);
  return workloads(objects).some(({ owner, template }) =>
    template.spec.containers.some(
      (c) =>
        value("namespace").every((m) => satisfies(m, owner.metadata.namespace)) &&
        value("pod").every((m) => satisfies(m, examplePodName(owner))) &&
        value("container").every((m) => satisfies(m, c.name)),
    ),
  );
}

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { type KubernetesObject, renderKustomization } from "./support/kustomize.js";
import { find, K8S_DIR, metricNamesInCode, overlayNames, ROOT } from "./support/manifests.js";
import {
  kubeStateMatches,
  podMonitorTargets,
  type ScrapeTarget,
  scrapeConfigTargets,
  selectorsOf,
  TARGET_LABELS,
  targetsMatching,
} from "./support/scrape-targets.js";

const OVERLAYS = await overlayNames();
const ALERTS_FILE = join(ROOT, "infra/prometheus/alerts.yml");
const SCRAPE_CONFIG = parseYaml(
  await readFile(join(ROOT, "infra/prometheus/scrape-config.example.yml"), "utf8"),
);

interface AlertRule {
  alert: string;
  expr: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
const ALERTS = (
  parseYaml(await readFile(ALERTS_FILE, "utf8")) as { groups: { rules: AlertRule[] }[] }
).groups.flatMap((g) => g.rules);
const DASHBOARD = JSON.parse(await readFile(join(ROOT, "infra/grafana/memscore-dashboard.json"), "utf8")) as {
  panels: { title: string; targets: { expr: string }[] }[];
};

/** Every PromQL query the project ships: alerts, dashboard panels ($queue: any), KEDA triggers. */
function queries(objects: KubernetesObject[]): { where: string; expr: string }[] {
  const scaled = find(objects, "ScaledObject", "memscore-worker").spec as {
    triggers: { metadata: { query: string } }[];
  };
  return [
    ...ALERTS.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr })),
    ...DASHBOARD.panels.flatMap((p) =>
      p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr.replaceAll("$queue", ".*") })),
    ),
    ...scaled.triggers.map((t, i) => ({ where: `KEDA trigger ${i}`, expr: t.metadata.query })),
  ];
}

/** Problems of one query against the targets of one scrape set-up: selectors no target can satisfy. */
function unmatched(expr: string, targets: ScrapeTarget[], objects: KubernetesObject[]): string[] {
  const problems: string[] = [];
  for (const selector of selectorsOf(expr)) {
    if (selector.metric?.startsWith("kube_")) {
      if (!kubeStateMatches(selector, objects))
        problems.push(`${selector.text}: no memscore pod or container`);
    } else if (selector.matchers.some((m) => TARGET_LABELS.has(m.label))) {
      if (targetsMatching(selector, targets).length === 0)
        problems.push(`${selector.text}: no scrape target`);
    }
  }
  return problems;
}

/** GitHub's anchor for a Markdown heading. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");

describe.each(OVERLAYS)("alerts, dashboard and autoscaling against the targets of overlays/%s", (overlay) => {
  let objects: KubernetesObject[];
  let operator: ScrapeTarget[];
  let plain: ScrapeTarget[];
  beforeAll(async () => {
    objects = await renderKustomization(join(K8S_DIR, "overlays", overlay));
    operator = podMonitorTargets(objects);
    plain = scrapeConfigTargets(SCRAPE_CONFIG, objects);
  });

  it("labels every memscore target job=memscore with its component, namespace and pod, with or without the operator", () => {
    const summary = (targets: ScrapeTarget[]) =>
      targets
        .map((t) => ({
          workload: t.workload,
          job: t.labels.job,
          component: t.labels.component,
          namespace: t.labels.namespace,
          pod: t.labels.pod,
        }))
        .sort((a, b) => a.workload.localeCompare(b.workload));
    expect(summary(operator)).toEqual([
      expect.objectContaining({
        workload: "memscore-producer",
        job: "memscore",
        component: "producer",
        namespace: "memscore",
      }),
      expect.objectContaining({
        workload: "memscore-redis",
        job: "memscore",
        component: "redis",
        namespace: "memscore",
      }),
      expect.objectContaining({
        workload: "memscore-worker",
        job: "memscore",
        component: "worker",
        namespace: "memscore",
      }),
    ]);
    expect(summary(plain)).toEqual(summary(operator));
  });

  it("matches every alert, panel and KEDA selector to labels a target really has", () => {
    const problems = queries(objects).flatMap(({ where, expr }) => [
      ...unmatched(expr, operator, objects).map((p) => `${where} (PodMonitor): ${p}`),
      ...unmatched(expr, plain, objects).map((p) => `${where} (scrape-config.example.yml): ${p}`),
    ]);
    expect(problems).toEqual([]);
    // The check catches what broke MemscoreWorkerDown before: a job name no target has.
    expect(unmatched('up{job="memscore-worker"} == 0', operator, objects)).toHaveLength(1);
    expect(unmatched('kube_pod_status_phase{pod=~"memscore-workers-.+"}', operator, objects)).toHaveLength(1);
  });

  it("names only metrics the code registers", async () => {
    const names = await metricNamesInCode();
    for (const { where, expr } of queries(objects)) {
      for (const m of expr.matchAll(/\bmemscore_[a-z0-9_]+/g)) {
        const name = m[0].replace(/_(bucket|sum|count)$/, "");
        expect(names.has(name) || names.has(m[0]), `${where}: ${m[0]}`).toBe(true);
      }
    }
  });
});

describe("alert rules", () => {
  it("link each alert to a runbook section of infra/README.md that exists", async () => {
    const readme = await readFile(join(ROOT, "infra/README.md"), "utf8");
    const anchors = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));
    for (const rule of ALERTS) {
      const url = rule.annotations.runbook_url ?? "";
      expect(url, rule.alert).toMatch(
        /^https:\/\/github\.com\/[^/]+\/[^/]+\/blob\/main\/infra\/README\.md#[a-z0-9-]+$/,
      );
      expect(anchors, `${rule.alert}: ${url}`).toContain(url.split("#")[1]);
      expect(["warning", "critical"], rule.alert).toContain(rule.labels.severity);
    }
  });
});

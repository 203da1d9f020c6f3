import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliProcess,
  type CliResult,
  metricsPortOf,
  runCli,
  startProducerProcess,
  startWorkerProcess,
  stopProcesses,
} from "./support/cli.js";
import { makePhoto } from "./support/images.js";
import { renderKustomization } from "./support/kustomize.js";
import { find, K8S_DIR, ROOT } from "./support/manifests.js";
import {
  type ActiveAlert,
  startPrometheus,
  type TargetGroup,
  type TestPrometheus,
} from "./support/prometheus.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { putObjects } from "./support/s3.js";
import { podMonitorTargets } from "./support/scrape-targets.js";
import { sleepUntil, uniqueName } from "./support/services.js";

const ALERTS = join(ROOT, "infra/prometheus/alerts.yml");
const IMAGES = 12;
const CHUNK = 4;

/** Scrape and rule evaluation interval of the test's Prometheus, in seconds. */
const INTERVAL_S = 2;
/** Every alert's `for:` in the test, in seconds: three evaluations. */
const FOR_S = 3 * INTERVAL_S;

/**
 * The production rules with every `for:` cut to three evaluations, so a test sees in seconds
 * what an on-call engineer sees after minutes, while one slow scrape on a loaded machine still
 * cannot fire anything. Thresholds and expressions are untouched. Only firing alerts count
 * below: that is what pages someone.
 */
async function rulesWithShortFor(dir: string): Promise<string> {
  const text = (await readFile(ALERTS, "utf8")).replace(/^(\s+)for: \S+$/gm, `$1for: ${FOR_S}s`);
  const path = join(dir, "alerts.yml");
  await writeFile(path, text);
  return path;
}

// Every alert expression, evaluated by a real Prometheus scraping a real worker and producer
// service that carry the labels the rendered PodMonitor gives them: quiet while healthy, quiet
// at zero workers with nothing queued, firing when work waits and the worker is gone or down.
describe("alerts and autoscaling on a real scrape (Prometheus, worker, producer service)", () => {
  let fixture: RunFixture;
  let prometheus: TestPrometheus;
  let dir: string;
  let producer: CliProcess;
  let worker: CliProcess | undefined;
  const processes: CliProcess[] = [];
  let workerPort: number;
  let producerPort: number;
  let labelsOf: { worker: Record<string, string>; producer: Record<string, string> };
  let kedaQuery: string;
  let keda: { threshold: number; activationThreshold: number };
  const input = uniqueName("in");
  const output = uniqueName("out");

  const workerTarget = (): TargetGroup => ({ targets: [`127.0.0.1:${workerPort}`], labels: labelsOf.worker });
  const producerTarget = (): TargetGroup => ({
    targets: [`127.0.0.1:${producerPort}`],
    labels: labelsOf.producer,
  });
  const value = async (expr: string): Promise<number | undefined> => {
    const answer = await prometheus.query(expr);
    const first = (answer.data.result as { value: [number, string] }[])[0];
    return first ? Number(first.value[1]) : undefined;
  };
  /**
   * Waits until Prometheus sees `expr` true, then until every rule group has evaluated a
   * scrape later and, with `pastFor`, long enough after for any alert that state implies to fire.
   */
  const settle = async (expr: string, pastFor = false) => {
    await sleepUntil(async () => (await prometheus.query(expr)).data.result.length > 0, {
      what: "(await prometheus.query(expr)).data.result.length > 0",
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    const after = Date.now() + (INTERVAL_S + (pastFor ? FOR_S + INTERVAL_S : 0)) * 1_000;
    await sleepUntil(async () => (await prometheus.lastEvaluations()).every((t) => t > after), {
      what: "(await prometheus.lastEvaluations()).every((t) => t > after)",
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  };
  const firing = async (): Promise<ActiveAlert[]> =>
    (await prometheus.alerts()).filter((a) => a.state === "firing");
  /** What fires now, as "alert {labels} value", so a failure says what fired. */
  const firingNow = async () =>
    (await firing()).map((a) => `${a.labels.alertname} ${JSON.stringify(a.labels)} value ${a.value}`).sort();
  /**
   * Starts a worker on a port it binds itself (port 0) and returns once it serves, so no other
   * process can take the port first; a restarted worker gets a new port, as a new pod gets a new
   * address.
   */
  const startWorker = async () => {
    worker = startWorkerProcess(fixture.env, ["--concurrency", "2", "--batch-size", "4"]);
    processes.push(worker);
    workerPort = await metricsPortOf(worker);
  };
  const enqueue = (runId: string, wait: boolean): Promise<CliResult> =>
    runCli(
      [
        "enqueue",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/${runId}/`,
        "--run-id",
        runId,
        "--chunk-size",
        String(CHUNK),
        ...(wait ? ["--wait", "--json"] : []),
      ],
      fixture.env,
      300_000,
    );

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    const photos = new Map<string, Buffer>();
    for (let i = 0; i < IMAGES; i++) photos.set(`photos/${i}.jpg`, await makePhoto(80 + i, 60, i + 1));
    await putObjects(fixture.s3, input, photos);

    // Labels and autoscaling query exactly as rendered for the cluster (instance is the address).
    const objects = await renderKustomization(join(K8S_DIR, "overlays/cpu"));
    const targets = podMonitorTargets(objects);
    const labels = (workload: string) => {
      const { instance: _instance, ...rest } = targets.find((t) => t.workload === workload)?.labels ?? {};
      return rest;
    };
    labelsOf = { worker: labels("memscore-worker"), producer: labels("memscore-producer") };
    const trigger = (
      find(objects, "ScaledObject", "memscore-worker").spec as {
        triggers: { metadata: { query: string; threshold: string; activationThreshold: string } }[];
      }
    ).triggers[0]?.metadata;
    kedaQuery = (trigger?.query ?? "").replace('queue="memscore"', `queue="${fixture.env.MEMSCORE_QUEUE}"`);
    keda = {
      threshold: Number(trigger?.threshold),
      activationThreshold: Number(trigger?.activationThreshold),
    };

    dir = await mkdtemp(join(tmpdir(), "memscore-alerts-"));
    producer = startProducerProcess(fixture.env);
    processes.push(producer);
    producerPort = await metricsPortOf(producer);
    await startWorker();
    prometheus = await startPrometheus({
      jobs: { memscore: [producerTarget(), workerTarget()] },
      ruleFiles: [await rulesWithShortFor(dir)],
      scrapeInterval: `${INTERVAL_S}s`,
    });
  });

  afterAll(async () => {
    await stopProcesses(processes);
    await prometheus?.stop();
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("stays quiet while a healthy worker and producer score a run", async () => {
    expect(labelsOf.worker).toMatchObject({ job: "memscore", component: "worker", namespace: "memscore" });
    expect(labelsOf.producer).toMatchObject({
      job: "memscore",
      component: "producer",
      namespace: "memscore",
    });
    await settle('up{component="worker"} == 1 and on() up{component="producer"} == 1');
    // Alerts that mean an outage must never fire during a healthy run, even with `for:` cut short
    // (a run's first seconds look stalled and its backlog growing then: those two are left out).
    const outage = new Set<string>();
    const run = enqueue("healthy", true);
    let done: CliResult | undefined;
    void run.then((r) => {
      done = r;
    });
    await sleepUntil(
      async () => {
        for (const a of await firing())
          if (
            !["MemscoreRunStalled", "MemscoreBacklogGrowingWhileWorkersIdle"].includes(
              a.labels.alertname ?? "",
            )
          )
            outage.add(`${a.labels.alertname} ${JSON.stringify(a.labels)} value ${a.value}`);
        return done !== undefined;
      },
      {
        what: "{ for (const a of await firing()) if ( !['MemscoreRunStalled', 'MemscoreBacklogGrowingWhileWorkersId",
        timeoutMs: 300_000,
        intervalMs: 500,
      },
    );
    expect(done?.code, done?.stderr).toBe(0);
    expect(JSON.parse(done?.stdout ?? "{}").final).toMatchObject({ imagesScored: IMAGES, imagesFailed: 0 });
    expect([...outage]).toEqual([]);
    // Once the run is done and nothing waits: nothing fires.
    await settle(
      `max(memscore_queue_jobs{state="completed"}) >= ${IMAGES / CHUNK} and on() max(memscore_queue_jobs{state="waiting"}) == 0`,
      true,
    );
    expect(await firingNow()).toEqual([]);
    // Every rule evaluates without error on these series.
    expect((await prometheus.rules()).filter((r) => r.health !== "ok")).toEqual([]);
  });

  it("stays quiet at zero workers with nothing queued, and KEDA's query says zero", async () => {
    // KEDA scaled the worker down: its pod, and so its target, are gone.
    await stopProcesses([worker as CliProcess]);
    await prometheus.setTargets("memscore", [producerTarget()]);
    await settle('absent(up{component="worker"}) and on() up{component="producer"} == 1', true);
    expect(await firingNow()).toEqual([]);
    expect(await value(kedaQuery)).toBe(0);
    expect(await value(kedaQuery)).toBeLessThanOrEqual(keda.activationThreshold);
  });

  it("fires MemscoreNoWorkers once work waits with no worker, and KEDA's query starts one", async () => {
    const enqueued = await enqueue("waiting", false);
    expect(enqueued.code, enqueued.stderr).toBe(0);
    await settle(`max(memscore_queue_jobs{state="waiting"}) == ${IMAGES / CHUNK}`);
    // The producer alone shows the backlog: enough for KEDA to leave zero.
    const backlog = await value(kedaQuery);
    expect(backlog).toBe(IMAGES / CHUNK);
    expect(backlog).toBeGreaterThan(keda.activationThreshold);
    await sleepUntil(async () => (await firing()).some((a) => a.labels.alertname === "MemscoreNoWorkers"), {
      what: "(await firing()).some((a) => a.labels.alertname === 'MemscoreNoWorkers')",
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const noWorkers = (await firing()).find((a) => a.labels.alertname === "MemscoreNoWorkers");
    expect(noWorkers?.labels).toMatchObject({
      namespace: "memscore",
      queue: fixture.env.MEMSCORE_QUEUE,
      severity: "critical",
    });
    expect(Number(noWorkers?.value)).toBe(IMAGES / CHUNK);
  });

  it("fires MemscoreWorkerDown too when the worker's pod is there but its process is stopped", async () => {
    await prometheus.setTargets("memscore", [producerTarget(), workerTarget()]);
    await settle('up{component="worker"} == 0');
    await sleepUntil(
      async () => {
        const names = (await firing()).map((a) => a.labels.alertname);
        return names.includes("MemscoreWorkerDown") && names.includes("MemscoreNoWorkers");
      },
      {
        what: "{ const names = (await firing()).map((a) => a.labels.alertname); return names.includes('MemscoreWork",
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
    const down = (await firing()).find((a) => a.labels.alertname === "MemscoreWorkerDown");
    expect(down?.labels).toMatchObject({ ...labelsOf.worker, instance: `127.0.0.1:${workerPort}` });
    // Every firing alert names its namespace, so Alertmanager can group and route by it.
    for (const a of await firing()) expect(a.labels.namespace, a.labels.alertname).toBe("memscore");
  });

  it("asks KEDA for one worker when nothing that reads the queue is scraped (producer gone too)", async () => {
    await stopProcesses([producer]);
    await prometheus.setTargets("memscore", []);
    await settle('absent(up{job="memscore"})');
    await sleepUntil(async () => (await prometheus.query("memscore_queue_jobs")).data.result.length === 0, {
      what: "(await prometheus.query('memscore_queue_jobs')).data.result.length === 0",
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const asked = await value(kedaQuery);
    expect(asked).toBeGreaterThan(keda.activationThreshold);
    expect(Math.ceil((asked as number) / keda.threshold)).toBe(1);
  });

  it("resolves once a worker is back and has drained the queue", async () => {
    await startWorker();
    await prometheus.setTargets("memscore", [workerTarget()]);
    await settle(
      `up{component="worker"} == 1 and on() max(memscore_queue_jobs{state="waiting"}) == 0 and on() max(memscore_queue_jobs{state="active"}) == 0`,
    );
    await sleepUntil(async () => (await firing()).length === 0, {
      what: "(await firing()).length === 0",
      timeoutMs: 60_000,
      intervalMs: 250,
    }).catch(() => {});
    expect(await firingNow()).toEqual([]);
  });
});

import type { RunSummary } from "../run-summary.js";
import { renderHistogramSvg } from "./histogram-svg.js";
import type { ResultsDigest, ScoredImage } from "./results-digest.js";
import type { Thumbnail } from "./thumbnails.js";

/** What one report page shows. */
export interface RunReportView {
  summary: RunSummary;
  digest: ResultsDigest;
  /** By heatmap URI. */
  thumbnails: ReadonlyMap<string, Thumbnail>;
  /** The results table that was read. */
  source: string;
  generatedAt: string;
}

/** Escapes text for HTML content and quoted attribute values: URIs and messages are untrusted. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// No scripts, and nothing but data: URIs may load: the page makes no requests, whatever it holds.
const CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 20px 40px; color: #1d1d1f; }
h1 { font-size: 24px; margin: 24px 0 4px; } h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; }
.sub, footer, .note { color: #555; } code { font-size: 13px; word-break: break-all; }
.banner { padding: 12px 16px; border-radius: 6px; margin: 16px 0; font-weight: 600; }
.banner.warn { background: #fff3cd; border: 1px solid #e0b300; } .banner.bad { background: #fde2e1; border: 1px solid #d33; }
table { border-collapse: collapse; margin: 8px 0 16px; } th, td { text-align: left; padding: 4px 12px 4px 0; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; } dt { color: #555; } dd { margin: 0; }
.bar { fill: #3b6fd6; } .grid { stroke: #eee; } .axis { stroke: #333; } .tick { font-size: 11px; fill: #333; } .axis-title { font-size: 12px; fill: #333; }
ol.gallery { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 16px; }
ol.gallery figure { margin: 0; } ol.gallery img { display: block; max-width: 100%; height: auto; border-radius: 4px; background: #eee; }
.no-thumb { display: flex; align-items: center; justify-content: center; height: 120px; background: #f3f3f3; color: #777; font-size: 13px; padding: 8px; }
figcaption { font-size: 13px; margin-top: 4px; word-break: break-all; } .score { font-weight: 600; font-variant-numeric: tabular-nums; }
`;

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "unknown";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h > 0 ? `${h} h ` : ""}${m} min ${String(s % 60).padStart(2, "0")} s`;
}

/** An image's name for display: its key below the run's input prefix when it has one. */
function displayName(uri: string, input: string): string {
  return input.startsWith("s3://") && uri.startsWith(input) && uri.length > input.length
    ? uri.slice(input.length)
    : uri;
}

function banners(view: RunReportView): string[] {
  const { summary, digest } = view;
  const out: string[] = [];
  if (summary.model === null) {
    out.push(
      `<div class="banner warn" role="alert" id="no-model">No worker scored an image in this run, so its model is not described.</div>`,
    );
  } else if (!summary.model.trained) {
    out.push(
      `<div class="banner bad" role="alert" id="untrained">The model ${escapeHtml(summary.model.name)} is untrained (random weights): these scores exercise the pipeline and are not memorability.</div>`,
    );
  }
  const models = Object.keys(summary.rows_by_model_sha256);
  if (models.length > 1) {
    out.push(
      `<div class="banner warn" role="alert" id="several-models">The workers of this run ran ${models.length} different models: rows by model sha256: ${models.map((sha) => `<code>${escapeHtml(sha)}</code> ${summary.rows_by_model_sha256[sha]}`).join(", ")}.</div>`,
    );
  }
  if (digest.badLines.count > 0) {
    const first = digest.badLines.first.map((b) => `line ${b.line}: ${escapeHtml(b.problem)}`).join("; ");
    out.push(
      `<div class="banner warn" role="alert" id="bad-lines">${digest.badLines.count} line${digest.badLines.count === 1 ? "" : "s"} of the results table could not be read and ${digest.badLines.count === 1 ? "is" : "are"} left out (${first}).</div>`,
    );
  }
  return out;
}

function summarySection(view: RunReportView): string {
  const { summary, digest } = view;
  const seconds = (Date.parse(summary.completed_at) - Date.parse(summary.created_at)) / 1000;
  const processed = digest.byStatus.scored + digest.byStatus.error;
  const rate = seconds > 0 ? `${(processed / seconds).toFixed(2)} images/s` : "unknown";
  const dl = [
    ["run id", `<code>${escapeHtml(summary.run_id)}</code>`],
    ["input", `<code>${escapeHtml(summary.input)}</code>`],
    ["output prefix", `<code>${escapeHtml(summary.output_prefix)}</code>`],
    ["created", escapeHtml(summary.created_at)],
    ["completed", escapeHtml(summary.completed_at)],
    ["duration", formatDuration(seconds)],
    [
      "throughput",
      `<span id="throughput">${rate}</span> <span class="note">(scored or failed images ÷ time from creation to completion)</span>`,
    ],
  ]
    .map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`)
    .join("");
  const statuses = (["scored", "error", "skipped"] as const)
    .map((s) => `<tr><td>${s}</td><td class="n" data-status="${s}">${digest.byStatus[s]}</td></tr>`)
    .join("");
  const reasons = [...digest.errorsByReason].sort((a, b) => b[1].count - a[1].count);
  const errors =
    reasons.length === 0
      ? `<p id="errors">No image failed.</p>`
      : `<table id="errors"><tr><th>reason</th><th>images</th><th>examples</th></tr>${reasons
          .map(
            ([reason, e]) =>
              `<tr><td><code>${escapeHtml(reason)}</code></td><td class="n">${e.count}</td><td>${e.examples
                .map((u) => `<code>${escapeHtml(u)}</code>`)
                .join("<br>")}</td></tr>`,
          )
          .join("")}</table>`;
  const m = summary.model;
  const model =
    m === null
      ? `<p>not described (no worker took part)</p>`
      : `<table id="model">${[
          ["name", escapeHtml(m.name)],
          ["version", escapeHtml(m.version)],
          ["sha256", `<code>${escapeHtml(m.sha256)}</code>`],
          ["trained", m.trained ? "yes" : "<strong>no</strong> (random weights)"],
          ["training data", escapeHtml(m.training_data)],
          ["licence", m.license ? escapeHtml(m.license) : "not stated in the model's metadata"],
        ]
          .map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`)
          .join("")}</table>`;
  return `<section id="summary"><h2>Summary</h2><dl>${dl}</dl>
<h3>Images by status</h3><table id="by-status"><tr><th>status</th><th>images</th></tr>${statuses}<tr><th>total</th><td class="n">${digest.rows}</td></tr></table>
<h3>Errors by reason</h3>${errors}
<h3>Model</h3>${model}</section>`;
}

function histogramSection(digest: ResultsDigest): string {
  const bins = digest.histogram.bins();
  const body =
    bins.length === 0
      ? `<p>No image was scored: there is no histogram.</p>`
      : `${renderHistogramSvg(bins)}<p class="note">${digest.histogram.count} scored images; lowest ${digest.bottom[0]?.score.toFixed(6)}, highest ${digest.top[0]?.score.toFixed(6)}.</p>`;
  return `<section id="histogram"><h2>Scores</h2>${body}</section>`;
}

function gallerySection(
  id: string,
  title: string,
  images: readonly ScoredImage[],
  view: RunReportView,
): string {
  const items = images
    .map((image, i) => {
      const name = escapeHtml(displayName(image.uri, view.summary.input));
      const thumb = image.heatmap ? view.thumbnails.get(image.heatmap) : undefined;
      const picture =
        thumb && "dataUri" in thumb
          ? `<img src="${thumb.dataUri}" width="${thumb.width}" height="${thumb.height}" alt="Grad-CAM heatmap of ${name}">`
          : `<div class="no-thumb">heatmap unavailable${thumb && "error" in thumb ? `: ${escapeHtml(thumb.error)}` : " (none written)"}</div>`;
      return `<li><figure>${picture}<figcaption><span class="rank">${i + 1}.</span> <span class="score">${image.score.toFixed(6)}</span> <span class="name" title="${escapeHtml(image.uri)}">${name}</span></figcaption></figure></li>`;
    })
    .join("");
  const body = images.length === 0 ? `<p>No scored images.</p>` : `<ol class="gallery">${items}</ol>`;
  return `<section id="${id}"><h2>${title}</h2>${body}</section>`;
}

/** The report as one self-contained HTML page: inline CSS and SVG, thumbnails as data: URIs. */
export function renderRunReport(view: RunReportView): string {
  const { summary, digest } = view;
  const n = Math.max(digest.top.length, digest.bottom.length);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memscore report: ${escapeHtml(summary.run_id)}</title>
<style>${STYLE}</style></head>
<body>
<header><h1>memscore run <code>${escapeHtml(summary.run_id)}</code></h1>
<p class="sub">${digest.rows} images from <code>${escapeHtml(summary.input)}</code> to <code>${escapeHtml(summary.output_prefix)}</code></p></header>
${banners(view).join("\n")}
${summarySection(view)}
${histogramSection(digest)}
${gallerySection("top", `Top ${n}: highest scores`, digest.top, view)}
${gallerySection("bottom", `Bottom ${n}: lowest scores`, digest.bottom, view)}
<footer><p>Read from <code>${escapeHtml(view.source)}</code>; generated ${escapeHtml(view.generatedAt)} by <code>memscore report</code>. Tables: <code>${escapeHtml(summary.results.csv)}</code>, <code>${escapeHtml(summary.results.parquet)}</code>.</p></footer>
</body></html>
`;
}

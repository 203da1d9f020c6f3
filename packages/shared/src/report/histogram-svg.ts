import type { HistogramBin } from "./score-histogram.js";

const WIDTH = 720;
const HEIGHT = 280;
const MARGIN = { left: 64, right: 16, top: 16, bottom: 52 };

/** A round step (1, 2 or 5 × 10^k) of at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

/** A bin edge as a label: four significant digits, no trailing zeros. */
const edgeLabel = (value: number): string => String(Number(value.toPrecision(4)));

/**
 * The histogram of scores as inline SVG: one bar per bin (empty bins included, so the bars'
 * counts add up to the number of scored images), labelled axes, and a tooltip per bar.
 */
export function renderHistogramSvg(bins: readonly HistogramBin[]): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const maxCount = Math.max(1, ...bins.map((b) => b.count));
  const yStep = Math.max(1, niceStep(maxCount / 4));
  const yMax = Math.ceil(maxCount / yStep) * yStep;
  const barWidth = plotWidth / Math.max(1, bins.length);
  const y = (count: number) => MARGIN.top + plotHeight - (count / yMax) * plotHeight;
  const parts: string[] = [];

  for (let tick = 0; tick <= yMax; tick += yStep) {
    parts.push(
      `<line class="grid" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(tick)}" y2="${y(tick)}"/>`,
      `<text class="tick" x="${MARGIN.left - 6}" y="${y(tick) + 4}" text-anchor="end">${tick}</text>`,
    );
  }
  bins.forEach((bin, i) => {
    const x = MARGIN.left + i * barWidth;
    const top = y(bin.count);
    const label = `${edgeLabel(bin.from)} to ${edgeLabel(bin.to)}: ${bin.count} image${bin.count === 1 ? "" : "s"}`;
    parts.push(
      `<rect class="bar" x="${x + 0.5}" y="${top}" width="${Math.max(0, barWidth - 1)}" height="${MARGIN.top + plotHeight - top}" data-from="${bin.from}" data-to="${bin.to}" data-count="${bin.count}"><title>${label}</title></rect>`,
    );
  });
  // Edge labels, thinned so they never overlap (about 60 px apart at least).
  const every = Math.max(1, Math.ceil(60 / barWidth));
  for (let i = 0; i <= bins.length; i += every) {
    const edge =
      i < bins.length ? (bins[i] as HistogramBin).from : (bins[bins.length - 1] as HistogramBin).to;
    const x = MARGIN.left + i * barWidth;
    parts.push(
      `<line class="axis" x1="${x}" x2="${x}" y1="${MARGIN.top + plotHeight}" y2="${MARGIN.top + plotHeight + 5}"/>`,
      `<text class="tick" x="${x}" y="${MARGIN.top + plotHeight + 18}" text-anchor="middle">${edgeLabel(edge)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${MARGIN.top + plotHeight}" y2="${MARGIN.top + plotHeight}"/>`,
    `<line class="axis" x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotHeight}"/>`,
    `<text class="axis-title" x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 8}" text-anchor="middle">score (bins ${edgeLabel(bins[0] ? bins[0].to - bins[0].from : 0)} wide)</text>`,
    `<text class="axis-title" transform="translate(16 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">images</text>`,
  );
  return `<svg id="histogram-chart" role="img" aria-label="Histogram of scores" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" xmlns="http://www.w3.org/2000/svg">${parts.join("")}</svg>`;
}

// `@memscore/shared/report`: a run's HTML report. A subpath of its own, so that processes which
// never write a report (producer, workers) do not load it or sharp through the main entry.
export { BoundedHeap } from "./bounded-heap.js";
export { renderHistogramSvg } from "./histogram-svg.js";
export { escapeHtml, type RunReportView, renderRunReport } from "./report-html.js";
export {
  type DigestOptions,
  digestResults,
  type ErrorReasonDigest,
  OTHER_REASONS,
  type ResultsDigest,
  type ScoredImage,
} from "./results-digest.js";
export { type BadResultLine, parseResultLine, type ResultLine, readResultLines } from "./results-stream.js";
export {
  buildRunReport,
  type RunReport,
  type RunReportOptions,
  runReportLocation,
  uploadRunReport,
} from "./run-report.js";
export { type HistogramBin, ScoreHistogram } from "./score-histogram.js";
export { makeThumbnail, makeThumbnails, type Thumbnail, type ThumbnailOptions } from "./thumbnails.js";

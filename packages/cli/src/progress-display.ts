import type { RunProgress } from "@memscore/producer";

/** Seconds as `m:ss` or `h:mm:ss`; `--:--` while unknown. */
export function formatEta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h > 0 ? 2 : 1, "0");
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

/** Failures by reason, most frequent first: `not_image 3, too_large 1`. */
export function describeFailures(byReason: Record<string, number>): string {
  return Object.entries(byReason)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason, n]) => `${reason} ${n}`)
    .join(", ");
}

/** {@link describeFailures} in parentheses after a leading space, or nothing when there are none. */
export function failuresSuffix(byReason: Record<string, number>): string {
  const text = describeFailures(byReason);
  return text ? ` (${text})` : "";
}

/** One progress line: a bar, percent, counts, rate, ETA and failures. */
export function formatRunProgress(p: RunProgress, width = 24): string {
  const fraction = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  const filled = Math.round(fraction * width);
  const listing = p.snapshot.listingDone ? "" : "+";
  const failed = p.snapshot.imagesFailed > 0 ? `  failed ${p.snapshot.imagesFailed}` : "";
  const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
  return `${bar} ${(fraction * 100).toFixed(1).padStart(5)}%  ${p.done}/${p.total}${listing} images  ${p.rate.toFixed(1)} img/s  ETA ${formatEta(p.etaSeconds)}${failed}`;
}

/** Writes status lines to stderr: redrawn in place on a terminal, every few seconds otherwise. */
export function statusWriter(): { update(line: string, force?: boolean): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let drawn = false;
  return {
    update(line, force = false) {
      const now = Date.now();
      if (!force && now - last < (tty ? 100 : 5_000)) return;
      last = now;
      if (tty) process.stderr.write(`\r\x1b[K${line}`);
      else process.stderr.write(`${line}\n`);
      drawn = tty;
    },
    end() {
      if (drawn) process.stderr.write("\n");
      drawn = false;
    },
  };
}

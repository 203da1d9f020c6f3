import { randomBytes } from "node:crypto";

/**
 * A fresh run id, `run-YYYYMMDD-HHMMSS-xxxx` (UTC): sortable by start time, readable in bucket
 * listings, and random enough that two runs started in the same second do not collide.
 */
export function generateRunId(now: Date = new Date()): string {
  const iso = now.toISOString(); // 2024-05-01T12:34:56.789Z
  const date = iso.slice(0, 10).replaceAll("-", "");
  const time = iso.slice(11, 19).replaceAll(":", "");
  return `run-${date}-${time}-${randomBytes(2).toString("hex")}`;
}

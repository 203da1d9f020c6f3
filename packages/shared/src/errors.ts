/**
 * Why an image could not be scored. Stable strings: they appear in output records, in the run's
 * results table and as a metric label, so dashboards and users can rely on them.
 * `retries_exhausted`: transient faults (S3 5xx, timeouts) persisted through every retry of the chunk.
 */
export const IMAGE_ERROR_REASONS = [
  "not_image",
  "unsupported_format",
  "too_large",
  "decode_failed",
  "not_found",
  "forbidden",
  "invalid_uri",
  "retries_exhausted",
] as const;
export type ImageErrorReason = (typeof IMAGE_ERROR_REASONS)[number];

/** Base class for errors memscore raises on purpose; `code` is stable and machine-readable. */
export class MemscoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration value is missing or malformed; `key` names the variable or flag to fix. */
export class ConfigError extends MemscoreError {
  readonly key: string;
  constructor(key: string, message: string) {
    super("config_invalid", `${key}: ${message}`);
    this.key = key;
  }
}

/**
 * One image can never be scored (retrying cannot help). It becomes that image's error record and
 * never fails the rest of its batch or chunk.
 */
export class ImageError extends MemscoreError {
  readonly reason: ImageErrorReason;
  constructor(reason: ImageErrorReason, message: string, options?: { cause?: unknown }) {
    super(reason, message, options);
    this.reason = reason;
  }
}

/** The model file breaks the contract in design.md (missing metadata, wrong input/output shape). */
export class ModelContractError extends MemscoreError {
  constructor(message: string) {
    super("model_contract", message);
  }
}

/** A short, single-line description of any thrown value, for logs and error records. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message.split("\n")[0] ?? error.name;
  return String(error);
}

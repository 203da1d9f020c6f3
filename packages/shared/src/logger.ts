/** Log levels in increasing severity; `MEMSCORE_LOG_LEVEL` picks the lowest one printed. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured fields attached to a log line. Values must be JSON-serialisable. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** @defaultValue "info" */
  level?: LogLevel;
  /** JSON lines (for log collectors) or short human-readable lines. @defaultValue "json" */
  format?: "json" | "text";
  /** Where lines go. @defaultValue process.stderr (stdout stays free for command output) */
  write?: (line: string) => void;
  /** Fields added to every line. */
  base?: LogFields;
}

// Keys whose values are never printed, whatever the caller passes (secrets must not reach logs).
const SECRET_KEY = /pass(word)?|secret|token|credential|authorization|api[-_]?key|session[-_]?key/i;

/** Replaces secrets in a URL (user:password@) and in secret-looking keys before logging. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return value.replace(/\/\/([^/@\s:]*):([^/@\s]*)@/g, "//$1:***@");
  if (depth > 4 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    out[k] = SECRET_KEY.test(k) ? "***" : redactSecrets(v, depth + 1);
  return out;
}

/** Creates a logger that writes one line per event; every line passes through {@link redactSecrets}. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = LEVEL_ORDER[options.level ?? "info"];
  const format = options.format ?? "json";
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const base = options.base ?? {};

  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (LEVEL_ORDER[level] < threshold) return;
    const safe = redactSecrets({ ...base, ...fields }) as LogFields;
    if (format === "json") {
      write(JSON.stringify({ time: new Date().toISOString(), level, msg: redactSecrets(message), ...safe }));
    } else {
      const extra = Object.entries(safe)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      write(`${level}: ${redactSecrets(message)}${extra ? ` ${extra}` : ""}`);
    }
  };

  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...options, base: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (for library callers that pass none). */
export const silentLogger: Logger = createLogger({ level: "error", write: () => {} });

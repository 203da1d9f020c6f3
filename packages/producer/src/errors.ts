import { MemscoreError } from "@memscore/shared";

/** A manifest line could not be read as an input image; `line` is 1-based, as editors show it. */
export class ManifestError extends MemscoreError {
  readonly path: string;
  readonly line: number;
  constructor(path: string, line: number, message: string) {
    super("manifest_invalid", `${path}:${line}: ${message}`);
    this.path = path;
    this.line = line;
  }
}

/** An enqueue reused a run id whose stored run describes different input or output. */
export class RunConflictError extends MemscoreError {
  constructor(message: string) {
    super("run_conflict", message);
  }
}

/** `waitForRun` was asked about a run id that the queue has never seen. */
export class RunNotFoundError extends MemscoreError {
  constructor(runId: string, queueName: string) {
    super("run_not_found", `no run "${runId}" in queue "${queueName}"`);
  }
}

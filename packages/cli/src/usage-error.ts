/**
 * Bad command-line usage: printed as one line (naming the flag when a flag is at fault), exit
 * code 2, no stack trace. `help`, when given, follows the line (an unknown flag, a missing
 * argument).
 */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly help?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

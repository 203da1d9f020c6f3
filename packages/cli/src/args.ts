import { parseArgs } from "node:util";
import { ConfigError, type ConfigOverrides, type MemscoreConfig, resolveConfig } from "@memscore/shared";
import { UsageError } from "./usage-error.js";

type OptionSpec = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

/** Flag values as parseArgs returns them. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/**
 * The one argument layer of every command: parseArgs with `--help` handled uniformly, and
 * errors turned into {@link UsageError} (an unknown flag prints the command's help too).
 */
export function parseCommandArgs<O extends OptionSpec>(
  args: string[],
  options: O,
  help: string,
): { values: FlagValues; positionals: string[] } | undefined {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${help}\n`);
    return undefined;
  }
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as FlagValues, positionals };
  } catch (error) {
    throw new UsageError((error as Error).message, help);
  }
}

/** Reads an optional string flag. */
export function stringFlag(values: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * Reads an optional integer flag within [min, max]; a bad value is a one-line usage error
 * naming the flag. Every command's integer flags go through here.
 */
export function integerFlag(
  values: Readonly<Record<string, unknown>>,
  name: string,
  range: { min: number; max: number },
): number | undefined {
  const raw = stringFlag(values, name);
  if (raw === undefined) return undefined;
  const value = /^-?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
    throw new UsageError(`--${name}: expected an integer from ${range.min} to ${range.max}, got "${raw}"`);
  }
  return value;
}

/**
 * The process's config from the environment and the flags that map one-to-one onto config
 * fields (flags win). A bad flag value is a one-line usage error naming the flag; a bad
 * variable, a ConfigError naming the variable.
 */
export function resolveCommandConfig(
  values: Readonly<Record<string, unknown>>,
  mapping: Readonly<Record<string, keyof ConfigOverrides>>,
  env: NodeJS.ProcessEnv = process.env,
  fixed: ConfigOverrides = {},
): MemscoreConfig {
  const overrides: ConfigOverrides = { ...fixed };
  const flagOf = new Map<string, string>();
  for (const [flag, key] of Object.entries(mapping)) {
    const value = stringFlag(values, flag);
    if (value === undefined) continue;
    overrides[key] = value;
    flagOf.set(key, flag);
  }
  try {
    return resolveConfig(env, overrides);
  } catch (error) {
    const flag = error instanceof ConfigError ? flagOf.get(error.key) : undefined;
    if (flag === undefined) throw error;
    throw new UsageError(`--${flag}: ${error instanceof Error ? error.message.replace(/^[^:]+: /, "") : ""}`);
  }
}

import { parseArgs } from "node:util";
import type { ConfigOverrides } from "@memscore/shared";
import { UsageError } from "./usage-error.js";

type OptionSpec = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

/** parseArgs with errors turned into {@link UsageError} and `--help` handled uniformly. */
export function parseCommandArgs<O extends OptionSpec>(
  args: string[],
  options: O,
  help: string,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } | undefined {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${help}\n`);
    return undefined;
  }
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | string[] | undefined>, positionals };
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${help}`);
  }
}

/** Reads an optional string flag. */
export function stringFlag(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * Collects the flags that map one-to-one onto config fields; resolveConfig then validates them,
 * naming the field of a bad value.
 */
export function configOverrides(
  values: Record<string, unknown>,
  mapping: Readonly<Record<string, keyof ConfigOverrides>>,
): ConfigOverrides {
  const overrides: ConfigOverrides = {};
  for (const [flag, key] of Object.entries(mapping)) {
    const value = stringFlag(values, flag);
    if (value !== undefined) overrides[key] = value;
  }
  return overrides;
}

import { readFile } from "node:fs/promises";

/** One Dockerfile instruction, continuation lines joined. */
export interface Instruction {
  keyword: string;
  /** Everything after the keyword, flags included. */
  args: string;
  line: number;
}

/** A build stage: its FROM (global ARG defaults substituted) and instructions. */
export interface Stage {
  name: string | undefined;
  /** The image or earlier stage it starts from. */
  from: string;
  instructions: Instruction[];
}

/** Reads a Dockerfile into stages: comments dropped, `\` continuations joined, `${ARG}` in FROM resolved. */
export async function parseDockerfile(
  path: string,
): Promise<{ args: Record<string, string>; stages: Stage[] }> {
  const raw = (await readFile(path, "utf8")).split("\n");
  const instructions: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  for (const [i, line] of raw.entries()) {
    if (pending === undefined && (line.trim() === "" || line.trimStart().startsWith("#"))) continue;
    if (pending !== undefined && line.trimStart().startsWith("#")) continue;
    const text = line.replace(/\s*\\$/, "");
    pending = pending
      ? { text: `${pending.text} ${text.trim()}`, line: pending.line }
      : { text: text.trim(), line: i + 1 };
    if (!line.endsWith("\\")) {
      const [keyword = "", ...rest] = pending.text.split(/\s+/);
      instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(" "), line: pending.line });
      pending = undefined;
    }
  }
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const substitute = (text: string) => text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args[a ?? b] ?? "");
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const [from = "", as, name] = substitute(instruction.args).split(/\s+/);
      stages.push({ name: as?.toUpperCase() === "AS" ? name : undefined, from, instructions: [] });
    } else if (stages.length === 0 && instruction.keyword === "ARG") {
      const [key = "", value = ""] = instruction.args.split("=");
      args[key] = value;
    } else stages.at(-1)?.instructions.push(instruction);
  }
  return { args, stages };
}

/** Splits an instruction's arguments into `--flag=value` options and the rest. */
export function splitFlags(args: string): { flags: Record<string, string>; words: string[] } {
  const flags: Record<string, string> = {};
  const words: string[] = [];
  for (const word of args.split(/\s+/).filter((w) => w !== "")) {
    const flag = /^--([a-z-]+)=(.*)$/.exec(word);
    if (flag && words.length === 0) flags[flag[1] as string] = flag[2] as string;
    else words.push(word);
  }
  return { flags, words };
}

/** `.dockerignore` patterns as a predicate over repository-relative paths. */
export function dockerIgnore(text: string): (path: string) => boolean {
  const patterns = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((pattern) => {
      const negated = pattern.startsWith("!");
      const glob = pattern.replace(/^!/, "").replace(/^\/+|\/+$/g, "");
      const source = glob
        .split("/")
        .map((part) =>
          part === "**"
            ? "(?:.*)"
            : part
                .replace(/[.+^$()|[\]{}]/g, "\\$&")
                .replaceAll("*", "[^/]*")
                .replaceAll("?", "[^/]"),
        )
        .join("/")
        .replaceAll("(?:.*)/", "(?:.*/)?");
      // A pattern matching a directory excludes everything under it.
      return { negated, regex: new RegExp(`^${source}(?:/.*)?$`) };
    });
  return (path) => {
    let ignored = false;
    for (const p of patterns) if (p.regex.test(path)) ignored = !p.negated;
    return ignored;
  };
}

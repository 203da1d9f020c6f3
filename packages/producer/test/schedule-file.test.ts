import { ConfigError } from "@memscore/shared";
import { describe, expect, it } from "vitest";
import { parseScheduleFile } from "../src/index.js";

const parse = (text: string) => parseScheduleFile(text, "schedules.yaml");
const failure = (text: string) => {
  try {
    parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected the file to be refused");
};

describe("schedule files (schedules declared in git)", () => {
  it("reads cron and interval schedules with their defaults", () => {
    expect(
      parse(`
# nightly rescans
schedules:
  - name: photos-nightly
    cron: "30 2 * * *"
    tz: Europe/Paris
    input: s3://archive/photos/
    outputPrefix: s3://scores/photos/
  - name: inbox
    everyMs: 600000
    input: s3://archive/inbox/
    outputPrefix: s3://scores/inbox/
    skipExisting: false
    chunkSize: 16
    maxPending: 50
`),
    ).toEqual([
      {
        name: "photos-nightly",
        cadence: { cron: "30 2 * * *", tz: "Europe/Paris" },
        scan: { input: "s3://archive/photos/", outputPrefix: "s3://scores/photos/", skipExisting: true },
      },
      {
        name: "inbox",
        cadence: { everyMs: 600_000 },
        scan: {
          input: "s3://archive/inbox/",
          outputPrefix: "s3://scores/inbox/",
          skipExisting: false,
          chunkSize: 16,
          maxPending: 50,
        },
      },
    ]);
    expect(parse("schedules: []\n")).toEqual([]);
    // JSON is YAML too.
    expect(parse('{"schedules": []}')).toEqual([]);
  });

  it("refuses a bad file with a message naming the entry and the field", () => {
    const entry = (extra: string) =>
      `schedules:\n  - name: a\n    input: s3://in-bucket/p/\n    outputPrefix: s3://out-bucket/p/\n${extra}`;
    expect(failure(entry('    cron: "61 * * * *"\n'))).toMatch(
      /^schedules\.yaml: schedules\[0\] \(a\)\.cron: "61 \* \* \* \*" is not a valid cron pattern/,
    );
    expect(failure(entry('    cron: "* * * * *"\n    everyMs: 1000\n'))).toBe(
      "schedules.yaml: schedules[0] (a): give exactly one of cron and everyMs",
    );
    expect(failure(entry(""))).toBe("schedules.yaml: schedules[0] (a): give exactly one of cron and everyMs");
    expect(failure(entry("    everyMs: 100\n"))).toBe(
      "schedules.yaml: schedules[0] (a).everyMs: expected an integer number of ms ≥ 500",
    );
    expect(failure(entry("    everyMs: 1000\n    tz: UTC\n"))).toBe(
      "schedules.yaml: schedules[0] (a).tz: expected a time zone name next to cron",
    );
    expect(failure(entry("    everyMs: 1000\n    chunksize: 8\n"))).toMatch(
      /^schedules\.yaml: schedules\[0\]\.chunksize: unknown key; expected name, cron, tz, everyMs,/,
    );
    expect(failure(entry("    everyMs: 1000\n    chunkSize: 0\n"))).toMatch(
      /^schedules\.yaml: schedules\[0\] \(a\): chunkSize: expected an integer from 1 to/,
    );
    expect(
      failure(
        "schedules:\n  - name: a\n    everyMs: 1000\n    input: /local/dir\n    outputPrefix: s3://out-bucket/p/\n",
      ),
    ).toMatch(/^schedules\.yaml: schedules\[0\] \(a\): .*s3:\/\//);
    expect(failure("schedules:\n  - name: Not_Allowed\n    everyMs: 1000\n")).toMatch(
      /^schedules\.yaml: schedules\[0\]\.name: use 1 to 40 of lowercase letters/,
    );
    const twice =
      "  - name: a\n    everyMs: 1000\n    input: s3://in-bucket/p/\n    outputPrefix: s3://out-bucket/p/\n";
    expect(failure(`schedules:\n${twice}${twice}`)).toBe('schedules.yaml: schedule "a" is listed twice');
    expect(failure("schedule:\n  - name: a\n")).toMatch(
      /^schedules\.yaml: expected a mapping with one key, "schedules"/,
    );
    expect(failure("schedules: [unclosed\n")).toMatch(/^schedules\.yaml: not valid YAML: /);
  });
});

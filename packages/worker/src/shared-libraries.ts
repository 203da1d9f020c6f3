import { spawnSync } from "node:child_process";
import { closeSync, openSync, readSync } from "node:fs";

/**
 * The DT_NEEDED entries of an ELF64 little-endian shared library: the libraries the dynamic
 * loader must find before the library itself loads. Read from the file (the program headers,
 * the dynamic segment and its string table), so no `ldd` or `readelf` is needed at run time.
 */
export function readNeededLibraries(path: string): string[] {
  const fd = openSync(path, "r");
  try {
    const read = (offset: number, length: number): Buffer => {
      const buffer = Buffer.alloc(length);
      const got = readSync(fd, buffer, 0, length, offset);
      if (got !== length) throw new Error(`${path}: truncated ELF file`);
      return buffer;
    };
    const header = read(0, 64);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) {
      throw new Error(`${path}: not a 64-bit little-endian ELF file`);
    }
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const segments: { type: number; offset: number; vaddr: number; filesz: number }[] = [];
    for (let i = 0; i < phnum; i++) {
      const ph = read(phoff + i * phentsize, 56);
      segments.push({
        type: ph.readUInt32LE(0),
        offset: Number(ph.readBigUInt64LE(8)),
        vaddr: Number(ph.readBigUInt64LE(16)),
        filesz: Number(ph.readBigUInt64LE(32)),
      });
    }
    const PT_LOAD = 1;
    const PT_DYNAMIC = 2;
    const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
    if (!dynamic) return [];
    // DT_STRTAB holds a virtual address: map it to a file offset through the loadable segments.
    const fileOffset = (vaddr: number): number => {
      const load = segments.find((s) => s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz);
      if (!load) throw new Error(`${path}: address 0x${vaddr.toString(16)} is in no loadable segment`);
      return load.offset + (vaddr - load.vaddr);
    };
    const entries = read(dynamic.offset, dynamic.filesz);
    const DT_NULL = 0n;
    const DT_NEEDED = 1n;
    const DT_STRTAB = 5n;
    const DT_STRSZ = 10n;
    const needed: number[] = [];
    let strtab = -1;
    let strsz = 0;
    for (let at = 0; at + 16 <= entries.length; at += 16) {
      const tag = entries.readBigInt64LE(at);
      const value = Number(entries.readBigUInt64LE(at + 8));
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) needed.push(value);
      else if (tag === DT_STRTAB) strtab = value;
      else if (tag === DT_STRSZ) strsz = value;
    }
    if (needed.length === 0) return [];
    if (strtab < 0) throw new Error(`${path}: dynamic segment without a string table`);
    const strings = read(fileOffset(strtab), strsz);
    return needed.map((offset) => strings.toString("latin1", offset, strings.indexOf(0, offset)));
  } finally {
    closeSync(fd);
  }
}

/** A library the dynamic loader could not load, with the loader's own reason. */
export interface UnloadableLibrary {
  name: string;
  reason: string;
}

// Runs in a child process: whatever a library's constructors do stays out of the worker, and a
// library that aborts while loading cannot take the worker down. `process.dlopen` calls dlopen(3),
// which searches LD_LIBRARY_PATH, the loader cache and the default folders like any dependency
// lookup; a library that loads but is no Node addon fails afterwards with "did not self-register".
const PROBE = `
const { constants } = require("node:os");
const failed = [];
for (const name of process.argv.slice(1)) {
  try {
    process.dlopen({ exports: {} }, name, constants.dlopen.RTLD_LAZY);
  } catch (error) {
    if (!/did not self-register/.test(error.message)) failed.push({ name, reason: error.message });
  }
}
process.stdout.write(JSON.stringify(failed));
`;

/**
 * Which of `names` the dynamic loader cannot load here, tried one by one in a child process with
 * this process's environment (so LD_LIBRARY_PATH counts).
 */
export function unloadableLibraries(names: readonly string[]): UnloadableLibrary[] {
  if (names.length === 0) return [];
  const child = spawnSync(process.execPath, ["-e", PROBE, ...names], { encoding: "utf8", timeout: 60_000 });
  if (child.status !== 0) {
    throw new Error(
      `probing shared libraries failed (${child.error?.message ?? child.stderr.split("\n")[0]})`,
    );
  }
  return JSON.parse(child.stdout) as UnloadableLibrary[];
}

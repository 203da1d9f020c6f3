import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import S3rver from "s3rver";
import { installS3rverFixes } from "./s3rver-fixes.js";

/** s3rver accepts only this fixed key pair (it checks request signatures against it). */
export const LOCAL_S3_ACCESS_KEY_ID = "S3RVER";
/** Secret that pairs with {@link LOCAL_S3_ACCESS_KEY_ID}. */
export const LOCAL_S3_SECRET_ACCESS_KEY = "S3RVER";

export interface LocalS3Options {
  /** Directory that holds the buckets; kept on stop. @defaultValue a fresh temp dir, removed on stop */
  dir?: string;
  /** Buckets created before the server starts. @defaultValue [] */
  buckets?: string[];
  /** TCP port on 127.0.0.1. @defaultValue a free port, chosen by the OS when the server binds */
  port?: number;
}

/** An S3 API server (s3rver) running inside this process. */
export interface LocalS3 {
  /** `http://127.0.0.1:PORT`; use with `forcePathStyle: true`. */
  endpoint: string;
  port: number;
  /** Creates a bucket directly in the store (no-op if it exists). */
  createBucket(name: string): Promise<void>;
  /** Closes the server and removes its temp dir; safe to call more than once. */
  stop(): Promise<void>;
}

/** Starts a silent in-process S3 API server on 127.0.0.1 for tests and the demo. */
export async function startLocalS3(options: LocalS3Options = {}): Promise<LocalS3> {
  const ownDir = options.dir === undefined;
  const directory = options.dir ?? (await mkdtemp(join(tmpdir(), "memscore-s3-")));
  const server = new S3rver({
    address: "127.0.0.1",
    // Port 0: the OS picks a free port as the server binds, so no other process can take it first.
    port: options.port ?? 0,
    silent: true,
    directory,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  installS3rverFixes(server);
  let port: number;
  try {
    ({ port } = await server.run());
  } catch (error) {
    if (ownDir) await rm(directory, { recursive: true, force: true });
    throw error;
  }

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    // Each step in its own try so a failed close still removes the temp dir.
    try {
      const closed = server.close();
      // Drop the clients' connections, idle or mid-request: a stopped test or demo server must not
      // wait for them (a client that sent half its headers holds it up to Node's 60 s timeout).
      server.httpServer?.closeAllConnections();
      await closed;
    } finally {
      if (ownDir) await rm(directory, { recursive: true, force: true });
    }
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    createBucket: async (name) => {
      await server.store.putBucket(name);
    },
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

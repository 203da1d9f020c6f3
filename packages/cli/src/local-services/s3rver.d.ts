// Minimal types for s3rver 3.7 (CommonJS, ships no types): only what local-services uses.
declare module "s3rver" {
  interface S3rverOptions {
    address?: string;
    port?: number;
    /** Suppresses s3rver's per-request console logging. */
    silent?: boolean;
    directory?: string;
    configureBuckets?: { name: string }[];
  }

  namespace S3rver {
    /** The part of a Koa context the local middleware touches. */
    interface Context {
      method: string;
      get(header: string): string;
      query: Record<string, string | string[] | undefined>;
      status: number;
      body: unknown;
    }
    type Middleware = (ctx: Context, next: () => Promise<void>) => Promise<void>;
  }

  class S3rver {
    constructor(options?: S3rverOptions);
    /** Koa's middleware stack; composed when the server starts listening. */
    middleware: S3rver.Middleware[];
    /** The on-disk store; `putBucket` creates a bucket without going through the S3 API. */
    store: { putBucket(name: string): Promise<unknown> };
    run(): Promise<{ address: string; port: number }>;
    /** The HTTP server, once `run()` has resolved. */
    httpServer?: import("node:http").Server;
    close(): Promise<void>;
  }

  export = S3rver;
}

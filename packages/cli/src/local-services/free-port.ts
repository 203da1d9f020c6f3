import { createServer } from "node:net";

/**
 * Asks the OS for a currently unused TCP port on `host` (listen on port 0, read it, close).
 * Another process could grab it before the caller binds it; callers start soon after.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close((err) => {
        if (err) reject(err);
        else if (port === 0) reject(new Error(`could not read a free port on ${host}`));
        else resolve(port);
      });
    });
  });
}

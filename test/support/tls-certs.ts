import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Files of a throwaway certificate authority and a server certificate it signed. */
export interface TestCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Makes a throwaway CA and a server certificate for 127.0.0.1/localhost with `openssl`, in `dir`.
 * Clients trust it through NODE_EXTRA_CA_CERTS=caFile, as they would a private CA in production.
 */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const file = (name: string) => join(dir, name);
  // Arguments as one line each (split on spaces): none of these paths or names has a space.
  const ssl = (line: string) => run("openssl", line.split(" "), { cwd: dir });
  await ssl(
    "req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.crt -subj /CN=memscore-test-CA",
  );
  await ssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
  await writeFile(file("san.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await ssl(
    "x509 -req -days 2 -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -extfile san.cnf",
  );
  return { caFile: file("ca.crt"), certFile: file("server.crt"), keyFile: file("server.key") };
}

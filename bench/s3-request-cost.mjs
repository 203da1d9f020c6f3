#!/usr/bin/env node
// Client CPU per S3 request, by request kind, as the worker issues them (a GET of an image, a
// PUT of a heatmap and of a record), made three ways: through the AWS SDK's GetObject and
// PutObject commands (what memscore used before), through memscore's Storage (single-object GET
// and PUT straight over HTTP, signed with the SDK's signer: object-client.ts), and as plain
// unsigned node:http requests (the floor). Each signed way runs with the PUT payload signed
// (SigV4 SHA-256 of the body, memscore's choice over plain HTTP) and unsigned (UNSIGNED-PAYLOAD,
// its choice over HTTPS, where S3 verifies the body by its CRC32). The server is a minimal S3
// stand-in in a child process that answers at once, so its CPU is not counted and a slow server
// cannot hide client cost.
//
//   node bench/s3-request-cost.mjs [--requests 2000] [--json]
import { spawn } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { Storage } from "@memscore/shared";
import { benchArgs, countFlag } from "./lib/args.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";

const SERVER = `
const http = require("node:http");
const image = Buffer.alloc(${96 * 1024}, 7);
const server = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    if (req.method === "GET") {
      res.writeHead(200, { "content-length": image.length, etag: '"abc"', "content-type": "image/jpeg" });
      res.end(image);
    } else {
      res.writeHead(200, { etag: '"abc"', "content-length": 0 });
      res.end();
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => process.send(server.address().port));
`;

const { values } = benchArgs({
  options: { requests: { type: "string", default: "2000" }, json: { type: "boolean", default: false } },
});
const requests = countFlag("requests", values.requests, "requests");

const child = spawn(process.execPath, ["-e", SERVER], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
const [port] = await once(child, "message");
process.env.AWS_ACCESS_KEY_ID ??= "bench";
process.env.AWS_SECRET_ACCESS_KEY ??= "bench";

const heatmap = Buffer.alloc(60 * 1024, 3);
const record = Buffer.from(JSON.stringify({ score: 0.5, gradcam: Array(7).fill(Array(7).fill(0.123456)) }));
const kinds = {
  "GET image (96 KiB)": (s, i) => s.get({ bucket: "b", key: `in/${i}.jpg` }, 1 << 30),
  "PUT heatmap (60 KiB)": (s, i) =>
    s.put({ bucket: "b", key: `out/${i}.heatmap.jpg` }, heatmap, { contentType: "image/jpeg" }),
  "PUT record (1 KiB, metadata)": (s, i) =>
    s.put({ bucket: "b", key: `out/${i}.json` }, record, {
      contentType: "application/json",
      metadata: { "input-etag": "abc", "model-sha256": "0".repeat(64), status: "scored" },
    }),
};

// The same requests through the SDK's own commands (on Storage's SDK client: same signing).
const sdkKinds = {
  "GET image (96 KiB)": async (s, i) => {
    const r = await s.client.send(new GetObjectCommand({ Bucket: "b", Key: `in/${i}.jpg` }));
    await r.Body.transformToByteArray();
  },
  "PUT heatmap (60 KiB)": (s, i) =>
    s.client.send(
      new PutObjectCommand({
        Bucket: "b",
        Key: `out/${i}.heatmap.jpg`,
        Body: heatmap,
        ContentType: "image/jpeg",
      }),
    ),
  "PUT record (1 KiB, metadata)": (s, i) =>
    s.client.send(
      new PutObjectCommand({
        Bucket: "b",
        Key: `out/${i}.json`,
        Body: record,
        ContentType: "application/json",
        Metadata: { "input-etag": "abc", "model-sha256": "0".repeat(64), status: "scored" },
      }),
    ),
};

async function measure(storage, run) {
  for (let i = 0; i < 100; i++) await run(storage, i); // warm-up: sockets, JIT
  const cpu = process.cpuUsage();
  const start = performance.now();
  // 16 in flight, as a pipeline thread has several images at once.
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < requests) await run(storage, next++);
    }),
  );
  const used = process.cpuUsage(cpu);
  return { cpuMsPerRequest: (used.user + used.system) / 1000 / requests, wallMs: performance.now() - start };
}

// The floor: the same requests as plain keep-alive node:http calls, unsigned (no SDK at all).
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const plain = (method, path, body) =>
  new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        agent,
        headers: body ? { "content-length": body.length } : {},
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks)));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
const plainKinds = {
  "GET image (96 KiB)": (_s, i) => plain("GET", `/b/in/${i}.jpg`),
  "PUT heatmap (60 KiB)": (_s, i) => plain("PUT", `/b/out/${i}.heatmap.jpg`, heatmap),
  "PUT record (1 KiB, metadata)": (_s, i) => plain("PUT", `/b/out/${i}.json`, record),
};

const results = [];
try {
  for (const [kind, run] of Object.entries(plainKinds)) {
    results.push({ kind, client: "node:http, no SDK", ...(await measure(undefined, run)) });
  }
  for (const unsignedPayload of [false, true]) {
    const config = {
      s3Endpoint: `http://127.0.0.1:${port}`,
      s3ForcePathStyle: true,
      awsRegion: "us-east-1",
      s3RequestTimeoutMs: 60_000,
    };
    const storage = new Storage({ ...config, allowedBuckets: [] }, { unsignedPayload });
    const payload = unsignedPayload ? "unsigned payload" : "signed payload";
    for (const [kind, run] of Object.entries(sdkKinds)) {
      results.push({ kind, client: `SDK commands, ${payload}`, ...(await measure(storage, run)) });
    }
    for (const [kind, run] of Object.entries(kinds)) {
      results.push({ kind, client: `memscore Storage, ${payload}`, ...(await measure(storage, run)) });
    }
    storage.close();
  }
} finally {
  child.kill();
}

if (values.json) {
  console.log(
    JSON.stringify({ benchmark: "s3-request-cost", requests, machine: describeMachine(), results }),
  );
} else {
  console.log(`inputs: ${requests} requests per kind, 16 in flight, server in another process`);
  printMachine(describeMachine());
  console.log("client CPU per request:");
  for (const r of results) {
    console.log(`  ${r.kind.padEnd(30)} ${r.client.padEnd(34)} ${r.cpuMsPerRequest.toFixed(3)} ms`);
  }
}

#!/usr/bin/env node
// CPU the AWS SDK spends per S3 request on the client, by request kind, as the worker issues them
// (Storage.get of an image, Storage.put of a heatmap and of a record). The server is a minimal
// S3 stand-in in a child process that answers at once (so its CPU is not counted and a slow
// server cannot hide client cost); the bodies are what the worker sends. Each kind runs with
// the payload signed (SigV4 SHA-256 of the body) and unsigned (UNSIGNED-PAYLOAD, what memscore
// sends over HTTPS; S3 verifies the body by its CRC32 instead).
//
//   node bench/s3-request-cost.mjs [--requests 2000] [--json]
import { spawn } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import { parseArgs } from "node:util";
import { createS3Client, Storage } from "@memscore/shared";
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

const { values } = parseArgs({
  options: { requests: { type: "string", default: "2000" }, json: { type: "boolean", default: false } },
});
const requests = Number(values.requests);

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
    const storage = new Storage(createS3Client(config, { unsignedPayload }), { allowedBuckets: [] });
    for (const [kind, run] of Object.entries(kinds)) {
      results.push({
        kind,
        client: unsignedPayload ? "SDK, unsigned payload" : "SDK, signed payload",
        ...(await measure(storage, run)),
      });
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
  console.log("client CPU per request (AWS SDK v3 through memscore's Storage):");
  for (const r of results) {
    console.log(`  ${r.kind.padEnd(30)} ${r.client.padEnd(22)} ${r.cpuMsPerRequest.toFixed(3)} ms`);
  }
}

# syntax=docker/dockerfile:1.7
# GPU worker image: `memscore worker` with ONNX Runtime's CUDA execution provider.
#
#   docker build -f infra/docker/worker.Dockerfile -t memscore-worker-gpu:0.1.0 .
#   docker run --gpus all -e REDIS_URL=... -e MEMSCORE_MODEL=s3://models/resmemnet-r50.onnx memscore-worker-gpu:0.1.0
#
# onnxruntime-node 1.30 is built against CUDA 12.x and cuDNN 9 (any CUDA 12 minor works, cuDNN 8
# does not); the base image brings both. The node binary comes from the official Node image
# (built against an old glibc, so it runs on Ubuntu 22.04), so build and runtime share one libc.
# For reproducible builds also pin the digests: FROM image:tag@sha256:...
ARG NODE_IMAGE=node:20.20.2-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE} AS build
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
  && apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Manifests first: the dependency layer is rebuilt only when they change.
COPY package.json package-lock.json .npmrc ./
COPY packages/shared/package.json packages/shared/
COPY packages/producer/package.json packages/producer/
COPY packages/worker/package.json packages/worker/
COPY packages/cli/package.json packages/cli/
# The repository's .npmrc skips onnxruntime-node's download of the CUDA provider libraries; this
# image needs them. ONNXRUNTIME_NODE_INSTALL wins over the .npmrc key (install-utils.js reads
# the variable first); "cuda12" is the only CUDA manifest of onnxruntime-node 1.30 on linux/x64.
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
RUN npm ci --no-audit --no-fund \
  && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so
COPY tsconfig.base.json tsconfig.json ./
COPY packages/ packages/
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${CUDA_IMAGE} AS runtime
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 memscore \
  && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin memscore
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages ./packages
# Metrics and health on all interfaces (probes and Prometheus reach the pod IP); JSON logs.
ENV NODE_ENV=production \
  MEMSCORE_PROVIDER=cuda \
  MEMSCORE_METRICS_HOST=0.0.0.0 \
  MEMSCORE_METRICS_PORT=9464 \
  MEMSCORE_LOG_FORMAT=json \
  UV_THREADPOOL_SIZE=8
USER 10001:10001
EXPOSE 9464
# Kubernetes uses its own probes (infra/k8s); this one is for plain `docker run`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/packages/cli/bin/memscore.cjs"]
CMD ["worker"]

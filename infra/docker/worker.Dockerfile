# syntax=docker/dockerfile:1.7
# GPU worker image: `memscore worker` with ONNX Runtime's CUDA execution provider.
#
#   docker build -f infra/docker/worker.Dockerfile -t memscore-worker-gpu:0.1.0 .
#   docker run --gpus all -e REDIS_URL=... -e MEMSCORE_MODEL=s3://models/resmemnet-r50.onnx memscore-worker-gpu:0.1.0
#
# ONNX Runtime's CUDA provider comes from the npm registry alone (`npm run gpu:install`, pinned
# sha256s in infra/gpu/cuda-provider.lock.json), never from onnxruntime-node's NuGet download:
# it is ONNX Runtime 1.29.0 built for CUDA 13 and cuDNN 9, which the base image brings
# (libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libcudnn.so.9); the
# NVIDIA container runtime mounts the driver's libcuda.so.1. The node binary comes from the
# official Node image (built against an old glibc, so it runs on Ubuntu 24.04), so build and
# runtime share one libc. For reproducible builds also pin the digests: FROM image:tag@sha256:...
ARG NODE_IMAGE=node:24.21.0-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE} AS build
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
# Node's headers, for the worker's JPEG codec (a Node-API addon over libjpeg-turbo).
COPY --from=node /usr/local/include/node /usr/local/include/node
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
  && apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \
    libjpeg-turbo8-dev \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Manifests first: the dependency layer is rebuilt only when they change.
COPY package.json package-lock.json .npmrc ./
COPY packages/shared/package.json packages/shared/
COPY packages/producer/package.json packages/producer/
COPY packages/worker/package.json packages/worker/
COPY packages/cli/package.json packages/cli/
# --ignore-scripts: no dependency install script runs, so onnxruntime-node's postinstall cannot
# reach NuGet whatever npm's version or the .npmrc say.
RUN npm ci --no-audit --no-fund --ignore-scripts
# The CUDA provider: fetched from the npm registry, every sha256 checked, placed next to
# onnxruntime-node's core library. Then every library it needs must resolve in this image, except
# the driver's libcuda.so.1 (mounted at run time); cuDNN, which it loads with dlopen, must be in
# the loader cache.
COPY infra/gpu/ infra/gpu/
RUN npm run gpu:install \
  && provider=node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
  && ldd "$provider" \
  && unresolved="$(ldd "$provider" | grep 'not found' | grep -v 'libcuda\.so\.1 ' || true)" \
  && if [ -n "$unresolved" ]; then echo "unresolved CUDA provider dependencies: $unresolved" >&2; exit 1; fi \
  && ldconfig -p | grep 'libcudnn\.so\.9 '
COPY tsconfig.base.json tsconfig.json ./
COPY packages/ packages/
# --require: a JPEG codec that did not compile fails the image build (see service.Dockerfile).
RUN npm run build && node packages/worker/scripts/build-jpeg-codec.mjs --require \
  && npm prune --omit=dev --no-audit --no-fund

FROM ${CUDA_IMAGE} AS runtime
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libjpeg-turbo8 \
  && rm -rf /var/lib/apt/lists/*
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

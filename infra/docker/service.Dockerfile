# syntax=docker/dockerfile:1.7
# CPU image: `memscore producer` (scheduled scans), `memscore schedule|enqueue|status`, and CPU
# workers (`memscore worker --provider cpu`).
#
#   docker build -f infra/docker/service.Dockerfile -t memscore-service:0.1.0 .
#   docker run -e REDIS_URL=... memscore-service:0.1.0 producer
#
# For reproducible builds also pin the digest: FROM image:tag@sha256:...
# Node 24, the current LTS line (the code also runs on Node 20: package.json engines).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ libjpeg62-turbo-dev \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY packages/shared/package.json packages/shared/
COPY packages/producer/package.json packages/producer/
COPY packages/worker/package.json packages/worker/
COPY packages/cli/package.json packages/cli/
# CPU only: no CUDA provider libraries (the repository's .npmrc says so too; explicit here).
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY packages/ packages/
# The worker's JPEG codec (libjpeg-turbo, packages/worker/native): --require fails the image
# build if it did not compile, rather than shipping a worker that decodes at a third the speed.
RUN npm run build && node packages/worker/scripts/build-jpeg-codec.mjs --require \
  && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libjpeg62-turbo \
  && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 memscore \
  && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin memscore
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages ./packages
ENV NODE_ENV=production \
  MEMSCORE_PROVIDER=cpu \
  MEMSCORE_METRICS_HOST=0.0.0.0 \
  MEMSCORE_METRICS_PORT=9464 \
  MEMSCORE_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/packages/cli/bin/memscore.cjs"]
CMD ["producer"]

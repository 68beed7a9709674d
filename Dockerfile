# The vilm image: coordinator and worker (same image; the first argument picks the command).
#   docker build -t vilm:latest .
#   docker run --rm vilm:latest model summary
#   docker run --rm vilm:latest start                       # the built-in sample: runs/ and the cache are the user's
#   docker run --rm -p 7070:7070 -p 9464:9464 -v vilm-runs:/app/runs vilm:latest coordinator --workers 2
#   docker run --rm -v "$PWD:/secrets:ro" vilm:latest worker --connect wss://coordinator-host:7070 --token-file /secrets/token
# A bind mount over /app/runs must be writable by uid 10001 (or run with --user "$(id -u):$(id -g)").
# PID 1 is tini (below), so `docker stop` / Ctrl-C reach vilm as SIGTERM/SIGINT: the coordinator
# finishes its step, checkpoints and exits, a worker leaves at once. (`docker run --init` is not needed.)
#
# Base image: Node.js 26, the Active LTS line on 2026-12-02. Even-numbered lines come out in April
# and become Active LTS that October: 26 was released in April 2026 and promoted to Active LTS in
# October 2026 (maintenance from October 2027, end of life April 2029); 24 went to Maintenance LTS
# in October 2026 and 20 reached end of life in April 2026. (From 27 on, Node.js makes one release a
# year, each becoming LTS in October; 26 stays the line to use until 27 is promoted in October 2027.)
# Debian 13 "trixie", slim: the current Debian stable (12 "bookworm" left regular security support
# in June 2026). The major is pinned; add the digest (node:26-trixie-slim@sha256:…) for bit-for-bit
# rebuilds.

# ---- build: every dependency, then src/ compiled to lib/ (scripts/build.mjs stamps lib/.built) ----
FROM node:26-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: compiling needs no install script (tfjs-node's would download libtensorflow for nothing)
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY scripts/build.mjs ./scripts/
COPY src ./src
RUN node scripts/build.mjs && test -f lib/.built

# ---- runtime: production dependencies and the compiled JavaScript, no sources, no dev tools ----
FROM node:26-trixie-slim
# tini as PID 1: forwards signals to vilm and reaps zombies (node as PID 1 ignores SIGTERM)
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
# A numeric non-root user: Kubernetes' runAsNonRoot can verify a uid, not a name (cluster/k8s runs
# the pods as 10001 too). It owns only what vilm writes: runs/, its cache and its home.
RUN groupadd --gid 10001 vilm \
 && useradd --uid 10001 --gid 10001 --home-dir /home/vilm --create-home --shell /usr/sbin/nologin vilm
ENV NODE_ENV=production
WORKDIR /app
# Dependencies first (a cached layer). npm ci runs `prepare` (scripts/build.mjs, which needs
# bin/launch.js): without TypeScript it only says so. The optional @tensorflow/tfjs-node is tried:
# it installs where the build can download libtensorflow (and brings @tensorflow/tfjs, its own
# dependency); elsewhere npm drops it and vilm runs on @tensorflow/tfjs-backend-wasm.
COPY package.json package-lock.json ./
COPY bin ./bin
COPY scripts/build.mjs ./scripts/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY configs ./configs
COPY data/sample ./data/sample
COPY models ./models
# lib/ without src/: bin/launch.js runs lib/ (no tsx, no transpiling at start)
COPY --from=build /app/lib ./lib
# VILM_CACHE_DIR: the built-in sample prepared by `vilm start` / `vilm train` without --data.
# VILM_METRICS_HOST: metrics default to 127.0.0.1, which nothing outside the container reaches.
ENV HOME=/home/vilm \
    VILM_CACHE_DIR=/home/vilm/.cache/vilm \
    VILM_METRICS_HOST=0.0.0.0
RUN mkdir -p /app/runs "$VILM_CACHE_DIR" \
 && chown -R 10001:10001 /app/runs /home/vilm
USER 10001:10001

# 7070: workers connect (WebSocket), 9464: Prometheus /metrics, /healthz, /readyz
EXPOSE 7070 9464
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/vilm.js"]
CMD ["--help"]

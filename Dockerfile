# The vilm image: coordinator and worker (same image, the first argument picks the command).
#   docker build -t vilm:latest .
#   docker run --rm vilm:latest model summary
#   docker run --rm -p 7070:7070 -p 9464:9464 -v "$PWD/runs:/app/runs" vilm:latest coordinator --help
#   docker run --rm vilm:latest worker --connect wss://coordinator-host:7070 --token-file /secrets/token
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first (cached layer). Optional @tensorflow/tfjs-node is tried; without it vilm uses wasm.
COPY package.json package-lock.json ./
COPY scripts/build.mjs ./scripts/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Sources run through tsx (a runtime dependency): a production install has no TypeScript to build
# lib/ with (scripts/build.mjs says so and skips).
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY configs ./configs
COPY data/sample ./data/sample
COPY cluster ./cluster

# 7070: workers connect (WebSocket), 9464: Prometheus /metrics, /healthz, /readyz
EXPOSE 7070 9464
USER node
ENTRYPOINT ["node", "bin/vilm.js"]
CMD ["--help"]

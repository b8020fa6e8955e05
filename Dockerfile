# The API and worker image (docker-compose.yml runs it twice with different commands).
# Build stage: install, generate the Prisma client, compile TypeScript.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN PRISMA_QUERY_ENGINE_LIBRARY=/dev/null npx prisma generate \
 && npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev

# Runtime stage: compiled code, production dependencies, and what `prisma migrate deploy` reads.
# The worker clones repositories itself (sandbox-runtime/repository-clone.ts): git, CA certificates for
# https remotes and openssh-client for ssh:// remotes.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production PRISMA_QUERY_ENGINE_LIBRARY=/dev/null
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json /app/prisma.config.ts ./
COPY --from=build /app/config ./config
COPY --from=build /app/prisma ./prisma
USER node
CMD ["node", "dist/api/server.js"]

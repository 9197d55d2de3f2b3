# syntax=docker/dockerfile:1
# The Concord image: concord-node (the default entrypoint) and concord-operator
# (command: ["node", "/app/operator/main.ts"]).
# Node 24 runs the TypeScript sources directly (type stripping), so the
# build stage only type-checks; the runtime stage has production
# dependencies and the sources, runs as a non-root user, and needs no
# writable root filesystem (data goes to the /var/lib/concord volume).

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The `node` dev dependency would fetch a second Node binary: skip install scripts.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY node ./node
COPY operator ./operator
RUN npx tsc -p tsconfig.json --noEmit \
 && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node ./node
COPY --from=build /src/operator ./operator
USER node
VOLUME ["/var/lib/concord"]
ENV CONCORD_DATA_DIR=/var/lib/concord
EXPOSE 8379 2380
ENTRYPOINT ["node", "/app/node/main.ts"]

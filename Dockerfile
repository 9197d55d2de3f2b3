# syntax=docker/dockerfile:1
# The Concord image: one image, every program, through bin/concord.ts:
#   docker run IMAGE --name=a ...         a Concord member (flags alone, as the
#                                         operator's StatefulSets run it)
#   docker run IMAGE node --name=a ...    the same, explicitly
#   docker run IMAGE operator [flags]     the operator (the Helm chart runs this)
#   docker run IMAGE ctl get app/x ...    concordctl
# Node 24 runs the TypeScript sources directly (type stripping), so the build
# stage only type-checks, with the dev dependencies; the runtime stage has the
# production dependencies and the sources without tests, runs as uid 1000 (a
# number, so that Kubernetes can verify runAsNonRoot), and writes nothing
# outside /var/lib/concord, so it runs with a read-only root filesystem.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The `node` dev dependency would fetch a second Node binary: skip install scripts.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY node ./node
COPY operator ./operator
COPY ctl ./ctl
RUN npx tsc -p tsconfig.json --noEmit \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim
# The package managers are not needed at run time: drop them and what they bring.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /opt/yarn-v* /usr/local/bin/yarn /usr/local/bin/yarnpkg \
 && mkdir -p /var/lib/concord && chown 1000:1000 /var/lib/concord
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/bin ./bin
COPY --from=build /src/node ./node
COPY --from=build /src/operator ./operator
COPY --from=build /src/ctl ./ctl
# The base image's `node` user, by number.
USER 1000:1000
VOLUME ["/var/lib/concord"]
ENV CONCORD_DATA_DIR=/var/lib/concord
# Member: client 8379, peer 2380. Operator: metrics and probes 8080.
EXPOSE 8379 2380 8080
# Node's flags are bin/runtime-flags.ts (a test keeps the two equal).
ENTRYPOINT ["node", "--max-semi-space-size=64", "/app/bin/concord.ts"]

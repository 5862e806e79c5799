# One image serves all three functions; each Knative Service picks its own with FUNCTION_TARGET.
# Node 22, the LTS line with support left (the code needs 20.19 or later; Node 20's support has ended).

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts only set up the embedded Postgres of `npm start` and the tests; tsc needs none.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY functions functions
COPY scripts scripts
RUN npm run build

FROM node:22-bookworm-slim AS production-deps
WORKDIR /app
COPY package.json package-lock.json ./
# No production dependency has an install script (a test checks the lockfile).
RUN npm ci --omit=dev --ignore-scripts

FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# package.json is how the code finds its root; pingpong applies db/migrations itself on first use.
COPY package.json ./
COPY db/migrations db/migrations
COPY --from=production-deps /app/node_modules node_modules
COPY --from=build /app/dist/functions dist/functions
# Where the compile cache goes (below): the only thing the image's user ever writes, and only while building.
RUN mkdir .node-compile-cache && chown 1000:1000 .node-compile-cache
# The image's node user, by number: runAsNonRoot can only be checked against a numeric user.
USER 1000:1000
# Node 22 keeps the code it compiles in NODE_COMPILE_CACHE and reuses it at the next start: a tenth of a
# cold start's CPU (docs/cold-start.md). The root filesystem is read-only in the cluster, so it is filled
# here: each function started as CMD starts it (module scope does no I/O) and stopped after 3 s, when it
# writes the cache. As the user it will run as: Node keeps one cache per user id. A function that cannot
# start fails the build. The path is relative to the WORKDIR, where CMD runs too, so that the rehearsal
# (test/chaos/image-rehearsal.test.ts) fills and finds it as here.
ENV NODE_COMPILE_CACHE=.node-compile-cache
RUN for target in pingpong log-output image-proxy; do \
      FUNCTION_TARGET=$target PORT=0 timeout 3 \
        node node_modules/@google-cloud/functions-framework/build/src/main.js --source=dist/functions/index.cjs > /dev/null; \
      [ $? -eq 124 ] || { echo "$target exited while starting"; exit 1; }; \
    done
EXPOSE 8080
# node itself, not npm, so that SIGTERM reaches functions-framework and pingpong drains its requests.
CMD ["node", "node_modules/@google-cloud/functions-framework/build/src/main.js", "--source=dist/functions/index.cjs"]

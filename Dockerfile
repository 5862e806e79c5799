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
COPY --from=build /app/dist/functions.cjs dist/functions.cjs
# The image's node user, by number: runAsNonRoot can only be checked against a numeric user.
USER 1000:1000
EXPOSE 8080
# node itself, not npm, so that SIGTERM reaches functions-framework and pingpong drains its requests.
CMD ["node", "node_modules/@google-cloud/functions-framework/build/src/main.js", "--source=dist/functions.cjs"]

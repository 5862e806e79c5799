/**
 * The Dockerfile, .dockerignore and what the image will run, without a container engine: the runtime
 * stage against the local runner (same entry, same framework, node directly) and the manifests (port,
 * numeric user), the production install, and the compiled code's imports.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { dockerfileProblems, dockerignoreProblems, installScriptProblems, parseDockerfile, runtimeImportProblems } from '../helpers/dockerfile';
import { assertCaught, loadManifests } from '../helpers/manifests';
import { tempDir } from '../helpers/temp';

const manifests = loadManifests();
const dockerfile = readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8');
const problemsAfter = (from: string | RegExp, to: string) => {
  const changed = dockerfile.replace(from, to);
  if (changed === dockerfile) throw new Error(`${from} is not in the Dockerfile`);
  return dockerfileProblems(changed, manifests);
};

test('the Dockerfile builds what the manifests and the local runner expect', (t) => {
  t.deepEqual(dockerfileProblems(dockerfile, manifests), []);
  t.deepEqual(parseDockerfile(dockerfile).map((stage) => stage.name), ['build', 'production-deps', undefined]);
});

test('the build context leaves out secrets, local data and build output', (t) => {
  t.deepEqual(dockerignoreProblems(), []);
  const root = tempDir(t, 'context-');
  writeFileSync(path.join(root, '.dockerignore'), 'node_modules\n/dist/\n.git\n');
  t.deepEqual(dockerignoreProblems(root), ['.dockerignore: must exclude .data', '.dockerignore: must exclude .env']);
});

test('the compiled functions load only Node\'s modules and production dependencies: no ts-node, nothing from devDependencies', (t) => {
  t.deepEqual(runtimeImportProblems(), []);
  const root = tempDir(t, 'dist-');
  mkdirSync(path.join(root, 'dist', 'functions', 'shared'), { recursive: true });
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({ dependencies: { postgres: '1' }, devDependencies: { 'ts-node': '1', yaml: '1' } }));
  writeFileSync(path.join(root, 'dist', 'functions', 'shared', 'a.js'), 'require("node:fs"); require("fs"); require("./b"); require("postgres"); require("ts-node/register"); require("@scope/pkg/x");');
  writeFileSync(path.join(root, 'dist', 'functions', 'index.cjs'), "require('./a'); require('yaml');");
  t.deepEqual(runtimeImportProblems(root), [
    "dist/functions/index.cjs: requires yaml, which is not a production dependency",
    'dist/functions/shared/a.js: requires ts-node, which is not a production dependency',
    'dist/functions/shared/a.js: requires @scope/pkg, which is not a production dependency',
  ]);
});

test('--ignore-scripts is safe: no production dependency has an install script', (t) => {
  t.deepEqual(installScriptProblems(), []);
  const root = tempDir(t, 'lock-');
  writeFileSync(path.join(root, 'package-lock.json'), JSON.stringify({ packages: { 'node_modules/a': { hasInstallScript: true, dev: true }, 'node_modules/b': { hasInstallScript: true } } }));
  t.deepEqual(installScriptProblems(root), ['package-lock.json: node_modules/b is a production dependency with an install script, which --ignore-scripts skips']);
});

test('the command: node itself, exec form, the local runner\'s framework entry and package.json main', (t) => {
  assertCaught(t, problemsAfter(/^CMD .*$/m, 'CMD ["npm", "start"]'), /CMD must start node directly/);
  assertCaught(t, problemsAfter(/^CMD .*$/m, 'CMD node node_modules/@google-cloud/functions-framework/build/src/main.js'), /CMD must use the exec form/);
  assertCaught(t, problemsAfter(/^(CMD .*)build\/src\/main\.js/m, '$1build/src/index.js'), /must run node_modules\/@google-cloud\/functions-framework\/build\/src\/main\.js/);
  assertCaught(t, problemsAfter(/^(CMD .*)--source=dist\/functions\/index\.cjs/m, '$1--source=dist/index.js'), /must pass --source=dist\/functions\/index\.cjs/);
  assertCaught(t, problemsAfter(/^CMD \["node", /m, 'CMD ["node", "-r", "ts-node/register", '), /no ts-node at run time/);
});

test('the runtime stage: a numeric non-root user, NODE_ENV, the files the code needs, production dependencies only', (t) => {
  assertCaught(t, problemsAfter('USER 1000:1000', 'USER node'), /numeric non-root USER \(uid:gid\), got "node"/);
  assertCaught(t, problemsAfter('USER 1000:1000', 'USER 0'), /numeric non-root USER/);
  assertCaught(t, problemsAfter('ENV NODE_ENV=production', 'ENV NODE_ENV=development'), /must set NODE_ENV=production/);
  assertCaught(t, problemsAfter('COPY db/migrations db/migrations', ''), /must COPY db\/migrations: pingpong applies them itself/);
  assertCaught(t, problemsAfter('COPY package.json ./\n', ''), /must COPY package\.json: the code finds the project root by it/);
  assertCaught(t, problemsAfter('--from=production-deps /app/node_modules', '--from=build /app/node_modules'), /COPY node_modules from a stage that runs `npm ci --omit=dev`/);
  assertCaught(t, problemsAfter('RUN npm run build', 'RUN npx tsc'), /COPY dist\/ from a stage that runs `npm run build`/);
});

test('the compile cache: filled after the last COPY, as the runtime user, by starting every function', (t) => {
  assertCaught(t, problemsAfter('for target in pingpong log-output image-proxy', 'for target in pingpong log-output'), /the RUN that fills the compile cache does not start image-proxy/);
  const userLast = dockerfile.replace('USER 1000:1000\n', '').replace('EXPOSE 8080', 'USER 1000:1000\nEXPOSE 8080');
  assertCaught(t, dockerfileProblems(userLast, manifests), /no RUN after the last COPY and USER starts/);
  assertCaught(t, problemsAfter('--source=dist/functions/index.cjs > /dev/null', '--source=dist/index.js > /dev/null'), /no RUN after the last COPY and USER starts/);
});

test('stages: more than one, base images pinned, and the port the manifests declare', (t) => {
  const single = 'FROM node:22-bookworm-slim\nCOPY . .\nCMD ["node", "x.js"]\n';
  t.deepEqual(dockerfileProblems(single, manifests), ['Dockerfile: multi-stage, please: build in one stage, run from a slim one']);
  assertCaught(t, problemsAfter('FROM node:22-bookworm-slim AS build', 'FROM node AS build'), /FROM node: pin a version tag/);
  assertCaught(t, problemsAfter('FROM node:22-bookworm-slim AS build', 'FROM node:latest AS build'), /FROM node:latest: pin a version tag/);
  assertCaught(t, problemsAfter('EXPOSE 8080', 'EXPOSE 3000'), /EXPOSE 3000, but knative\/pingpong\.yaml declares containerPort 8080/);
});

/**
 * The kustomizations the docs tell readers to write (an image of their own for `kubectl apply -k`, the
 * system without the DaemonSet) render as the docs say, with this checkout as their base.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { containers, manifestTest as test, podTemplates, renderKustomization, type Manifest } from '../helpers/manifests';
import { tempDir } from '../helpers/temp';

/** The top-level kustomization the documented ones build on (monitoring/, applied on its own, is not in it). */
const system = () => renderKustomization('.');

/** The YAML block in `page` that starts with `# <folder>/kustomization.yaml`, rendered with this checkout as its base. */
function renderDocumented(t: ExecutionContext, page: string, folder: string): Manifest[] {
  const text = readFileSync(path.join(projectRoot, page), 'utf8');
  const block = new RegExp(`\`\`\`yaml\\n# ${folder}/kustomization\\.yaml\\n([\\s\\S]*?)\`\`\``).exec(text)?.[1];
  if (!block) throw new Error(`${page} has no block starting with # ${folder}/kustomization.yaml`);
  const root = tempDir(t, 'overlay-');
  mkdirSync(path.join(root, folder));
  const base = path.relative(path.join(root, folder), projectRoot);
  writeFileSync(path.join(root, folder, 'kustomization.yaml'), block.replace(/^(\s+- )\.\.\/devops-with-kubernetes-knative\b.*$/m, `$1${base}`));
  return renderKustomization(folder, root);
}

/** `Kind/name /json/pointer` of each container, with the image it runs. */
const images = (manifests: Manifest[]) =>
  manifests.flatMap((m) => podTemplates(m.doc).flatMap((pod) => containers(pod).map(({ at, container }) => ({ where: `${m.doc.kind}/${m.doc.metadata.name} ${at}`, image: String(container.image) }))));

test('cluster.md\'s own kustomization puts the image into every container that runs the functions, and changes nothing else', (t) => {
  const rendered = renderDocumented(t, 'docs/cluster.md', 'my-deploy');
  const ours = images(rendered).filter(({ image }) => image === 'registry.example.com/exercises/functions:1.0.0');
  t.deepEqual(ours.map(({ where }) => where).sort(), [
    'DaemonSet/image-prepull /spec/template/spec/initContainers/0',
    'Service/image-proxy /spec/template/spec/containers/0',
    'Service/log-output /spec/template/spec/containers/0',
    'Service/pingpong /spec/template/spec/containers/0',
  ]);
  t.false(images(rendered).some(({ image }) => image.includes('dev.local/functions')));
  t.is(rendered.length, system().length);
});

test('resources.md\'s kustomization without the DaemonSet deploys everything else', (t) => {
  const rendered = renderDocumented(t, 'docs/resources.md', 'without-prepull');
  const names = (manifests: Manifest[]) => manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort();
  t.deepEqual(names(rendered), names(system()).filter((name) => name !== 'DaemonSet/image-prepull'));
});

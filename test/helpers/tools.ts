/** Tests that need a system tool: skipped loudly when it is missing, failed under CI=true (where .ci/run installs it). */
import { spawnSync } from 'node:child_process';
import test, { type ExecutionContext } from 'ava';

type Implementation = (t: ExecutionContext) => Promise<void> | void;

/**
 * `test` (or `test.serial`), when every tool in `tools` runs; otherwise a stand-in that reports each test
 * as skipped (or failed under CI).
 */
export function testNeeding(
  tools: string[],
  howToInstall: string,
  { serial = false } = {},
): (title: string, implementation: Implementation) => void {
  const missing = tools.filter((tool) => spawnSync(tool, ['--version']).error);
  return testUnless(missing.length ? { what: missing.join(', '), why: `${missing.join(', ')} not found: ${howToInstall}` } : undefined, { serial });
}

/** `test` (or `test.serial`) when nothing is `missing`; otherwise each test is skipped saying why, or failed under CI. */
export function testUnless(
  missing: { what: string; why: string } | undefined,
  { serial = false } = {},
): (title: string, implementation: Implementation) => void {
  if (!missing) return serial ? test.serial : test;
  if (process.env.CI === 'true') return (title) => test(title, (t) => t.fail(missing.why));
  console.warn(`SKIPPING tests that need ${missing.why}`);
  return (title, implementation) => test.skip(`${title} (needs ${missing.what})`, implementation);
}

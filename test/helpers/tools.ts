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
  if (missing.length === 0) return serial ? test.serial : test;
  const why = `${missing.join(', ')} not found: ${howToInstall}`;
  if (process.env.CI === 'true') return (title) => test(title, (t) => t.fail(why));
  console.warn(`SKIPPING tests that need ${why}`);
  return (title, implementation) => test.skip(`${title} (needs ${missing.join(', ')})`, implementation);
}

/** Tests that need a system tool: skipped loudly when it is missing, failed under CI=true (where .ci/run installs it). */
import { spawnSync } from 'node:child_process';
import test, { type ExecutionContext } from 'ava';

type Implementation = (t: ExecutionContext) => Promise<void> | void;

/**
 * `test` (or `test.serial`), when every tool in `tools` runs (and `check`, if given, finds nothing wrong
 * with them, such as an old version); otherwise a stand-in that reports each test as skipped (or failed under CI).
 */
export function testNeeding(
  tools: string[],
  howToInstall: string,
  { serial = false, check }: { serial?: boolean; check?: () => string | undefined } = {},
): (title: string, implementation: Implementation) => void {
  const missing = tools.filter((tool) => spawnSync(tool, ['--version']).error);
  const problem = missing.length ? `${missing.join(', ')} not found` : check?.();
  if (!problem) return serial ? test.serial : test;
  const why = `${problem}: ${howToInstall}`;
  if (process.env.CI === 'true') return (title) => test(title, (t) => t.fail(why));
  console.warn(`SKIPPING tests that need ${why}`);
  return (title, implementation) => test.skip(`${title} (needs ${missing.length ? missing.join(', ') : tools.join(', ')})`, implementation);
}

/** Tests that need a system tool: skipped loudly when it is missing, failed under CI=true (where .ci/run installs it). */
import { spawnSync } from 'node:child_process';
import test, { type ExecutionContext } from 'ava';

type Implementation = (t: ExecutionContext) => Promise<void> | void;
type TestFunction = (title: string, implementation: Implementation) => void;

/**
 * `test` (or `test.serial`), when every tool in `tools` runs; otherwise a stand-in that reports each test
 * as skipped (or failed under CI).
 */
export function testNeeding(tools: string[], howToInstall: string, { serial = false } = {}): TestFunction {
  const missing = tools.filter((tool) => spawnSync(tool, ['--version']).error);
  return testUnless(missing.length ? `${missing.join(', ')} not found: ${howToInstall}` : undefined, missing.join(', '), { serial });
}

/**
 * `test` (or `test.serial`) when `problem` is undefined; otherwise a stand-in that reports each test as
 * skipped, naming what it `needs` and saying `problem` once, or failed with `problem` under CI=true.
 */
export function testUnless(problem: string | undefined, needs: string, { serial = false } = {}): TestFunction {
  if (problem === undefined) return serial ? test.serial : test;
  if (process.env.CI === 'true') return (title) => test(title, (t) => t.fail(problem));
  console.warn(`SKIPPING tests that need ${problem}`);
  return (title, implementation) => test.skip(`${title} (needs ${needs})`, implementation);
}

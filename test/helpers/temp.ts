/** Temporary folders that remove themselves, so that the suites leave nothing behind in /tmp. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';

/**
 * A new empty folder (mode 700) under the system's temporary folder, removed with everything in it when
 * the test ends, passed or failed. Teardowns run last-registered first, so whatever the test starts
 * afterwards in it (a server, a browser) is stopped before the folder goes.
 */
export function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A folder like tempDir's for every test of a file, made when the file loads and removed after its last test. */
export function tempDirForFile(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  test.after.always(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

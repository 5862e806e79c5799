/** Temporary folders that remove themselves, so that the suites leave nothing behind in /tmp. */
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';

/**
 * A new empty folder (mode 700) under the system's temporary folder, removed with everything in it when
 * the test ends, passed or failed. Teardowns run last-registered first, so whatever the test starts
 * afterwards in it (a server, a browser) is stopped before the folder goes. Removed off the event loop: a
 * browser's profile or a Prometheus's data is many files, and the worker's other tests keep their clocks.
 */
export function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A folder like tempDir's for every test of a file, made when the file loads and removed after its last test. */
export function tempDirForFile(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  test.after.always(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

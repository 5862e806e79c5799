/** Processes killed the way a crash kills them: a parent and every child it started, at once. */
import { readdirSync, readFileSync } from 'node:fs';

/** SIGKILL `root` and its children; resolves once none is running any more. */
export async function killProcessTree(root: number): Promise<void> {
  // A stopped postmaster forks no new backend between our listing its children and killing them.
  process.kill(root, 'SIGSTOP');
  const tree = [root, ...childrenOf(root)];
  for (const pid of tree) killIfThere(pid);
  // The postmaster must be reaped, not only dead: a new one refuses to start while the pid in the stale
  // pid file still exists, and a zombie does. Our process is its parent and reaps it; the backends are
  // reaped by whoever inherits them, which may be never, so for them being a zombie is gone enough.
  const giveUpAt = Date.now() + 10_000;
  while (!isGone(root) || tree.some((pid) => isRunning(pid))) {
    if (Date.now() > giveUpAt) throw new Error(`Postgres processes ${tree.join(', ')} still there 10 s after SIGKILL`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function killIfThere(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error; // a backend that ended by itself meanwhile
  }
}

function childrenOf(parent: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => processStat(pid)?.ppid === parent);
}

/** State and parent from /proc/<pid>/stat; undefined when there is no such process. */
function processStat(pid: number): { state: string; ppid: number } | undefined {
  const fields = statFields(pid);
  return fields && { state: fields[0]!, ppid: Number(fields[1]) };
}

/**
 * The fields of /proc/<pid>/stat after the command name (state, ppid, ..., utime at [11], stime at [12]),
 * or undefined when there is no such process. The name is in parentheses and may itself hold spaces and
 * parentheses, so the fields start after the last ')'.
 */
export function statFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

const isGone = (pid: number) => processStat(pid) === undefined;
const isRunning = (pid: number) => (processStat(pid)?.state ?? 'Z') !== 'Z';

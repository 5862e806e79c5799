/** A function's output read as its log: the JSON lines functions/shared/log.ts writes, and anything else it printed. */

/** One JSON line: `severity` and `message` always, the other fields as the line has them. */
export interface LogEntry {
  severity: string;
  message: string;
  [field: string]: unknown;
}

/** log-output's exercise line, `<ISO timestamp>: <uuid>.`, which stays plain text as the course prints it. */
export const STAMP_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.$/;

/** The lines of `output` that are log entries, and the others (empty lines left out). */
export function readLog(output: string): { entries: LogEntry[]; others: string[] } {
  const entries: LogEntry[] = [];
  const others: string[] = [];
  for (const line of output.split('\n')) {
    if (line === '') continue;
    const entry = parseEntry(line);
    if (entry) entries.push(entry);
    else others.push(line);
  }
  return { entries, others };
}

function parseEntry(line: string): LogEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const { severity, message } = (value ?? {}) as Record<string, unknown>;
  return typeof severity === 'string' && typeof message === 'string' ? (value as LogEntry) : undefined;
}

/** Every string inside the JSON lines of `output`, decoded: what a reader of the log sees, whatever escapes JSON used. */
export function decodedStrings(output: string): string[] {
  const strings: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') strings.push(value);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      walk(JSON.parse(line));
    } catch {
      // not JSON: read as it is by whoever reads `output`
    }
  }
  return strings;
}

/** The sum of the `failures` fields of the lines about `dependency`: every failure is in exactly one line. */
export function failuresLogged(entries: LogEntry[], dependency: string): number {
  return entries.filter((entry) => entry.dependency === dependency).reduce((sum, entry) => sum + ((entry.failures as number | undefined) ?? 0), 0);
}

/**
 * The functions' operational log: one JSON object per line on stdout, the shape Knative's and Cloud Run's
 * log agents, Loki and Grafana Alloy read: `severity`, `message`, the `function` and its `revision`
 * (Knative's K_REVISION) and, for a failure, its `dependency`, `reason` (the values the failure counters
 * use) and `failures`. docs/logs.md shows the lines and how to read an outage from them.
 *
 * A dependency that fails every request writes a few lines, not one per request: each kind of failure (a
 * dependency and a reason) writes its first failure at once, then at most one line per interval saying how
 * many failed since, and the first answer after them writes one line saying how long it was out. Every
 * failure is in exactly one line's `failures`, and the metrics count each one as it happens.
 */
import { readLogContext, type LogContext } from './config';

/** Cloud Logging's names, which Loki and Grafana read as levels too. */
export type Severity = 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';

/** What a line carries beside its message; an undefined value is left out. */
export type Fields = Readonly<Record<string, string | number | undefined>>;

/** A kind of failure that keeps happening writes a line at most this often. */
export const REPEAT_INTERVAL_MS = 5000;

export interface LogOptions {
  /** Takes one line, without its newline; stdout unless said. */
  write?: (line: string) => void;
  /** Milliseconds on a clock that never jumps back; `performance.now()` unless said. */
  now?: () => number;
  /** The time each line is stamped with; the wall clock unless said. */
  time?: () => Date;
  repeatIntervalMs?: number;
}

export class Log {
  readonly now: () => number;
  readonly repeatIntervalMs: number;
  private readonly output: (line: string) => void;
  private readonly time: () => Date;
  private redact: (text: string) => string = (text) => text;
  private readonly dependencies = new Map<string, DependencyLog>();
  private readonly unexpectedErrors = new RepeatedFailure();

  constructor(
    private readonly context: LogContext,
    { write = (line) => process.stdout.write(`${line}\n`), now = () => performance.now(), time = () => new Date(), repeatIntervalMs = REPEAT_INTERVAL_MS }: LogOptions = {},
  ) {
    this.output = write;
    this.now = now;
    this.time = time;
    this.repeatIntervalMs = repeatIntervalMs;
  }

  info(message: string, fields?: Fields): void {
    this.write('INFO', message, fields);
  }

  warning(message: string, fields?: Fields): void {
    this.write('WARNING', message, fields);
  }

  error(message: string, fields?: Fields): void {
    this.write('ERROR', message, fields);
  }

  /** The process cannot go on (it could not start). */
  critical(message: string, fields?: Fields, stack?: string): void {
    this.write('CRITICAL', message, fields, stack);
  }

  /** Every string of every line passes through `redact` first: a secret never reaches the log, however an error quotes it. */
  redactWith(redact: (text: string) => string): void {
    this.redact = redact;
  }

  /** The failures of the dependency `name` (`postgres`, `pingpong`, `pixabay`), written as the top of this file says. */
  dependency(name: string): DependencyLog {
    let dependency = this.dependencies.get(name);
    if (!dependency) this.dependencies.set(name, (dependency = new DependencyLog(this, name)));
    return dependency;
  }

  /**
   * A programming error, not a dependency's failure: its first line and its stack at once, then at most
   * one line per interval counting the others, with the latest one's stack.
   */
  unexpected(error: unknown, fields?: Fields): void {
    const now = this.now();
    if (!this.unexpectedErrors.count(now, firstLine(String(error)), stackOf(error), this.repeatIntervalMs)) return;
    this.writeUnexpected(now, fields);
  }

  /** Writes the failures counted but not yet written: at shutdown, so that every count is told. */
  flush(): void {
    for (const dependency of this.dependencies.values()) dependency.flush();
    if (this.unexpectedErrors.unwritten > 0) this.writeUnexpected(this.now());
  }

  /** One line: severity and message first, then `fields`, who wrote it and when, and the stack last. */
  write(severity: Severity, message: string, fields: Fields = {}, stack?: string): void {
    const entry: Record<string, string | number> = { severity, message: this.redact(message) };
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) entry[key] = typeof value === 'string' ? this.redact(value) : value;
    }
    if (this.context.function) entry.function = this.context.function;
    if (this.context.revision) entry.revision = this.context.revision;
    entry.time = this.time().toISOString();
    // Cloud Logging's Error Reporting reads a stack from this field.
    if (stack) entry.stack_trace = this.redact(stack);
    this.output(JSON.stringify(entry));
  }

  private writeUnexpected(now: number, fields?: Fields): void {
    const kind = this.unexpectedErrors;
    const { latestCause, latestStack } = kind;
    const { failures, seconds } = kind.take(now);
    const message = failures === 1 ? `unexpected error: ${latestCause}` : `${failures} unexpected errors in the last ${seconds} s; the latest: ${latestCause}`;
    this.write('ERROR', message, { ...fields, event: 'unexpected_error', failures }, latestStack);
  }
}

/** One kind of failure: how many happened since its last line, and when that line was written. */
class RepeatedFailure {
  lastWrittenAt = -Infinity;
  unwritten = 0;
  unwrittenSince = 0;
  latestCause = '';
  latestStack: string | undefined;

  /** Counts one failure; true when a line is due, none having been written within the interval. */
  count(now: number, cause: string, stack: string | undefined, intervalMs: number): boolean {
    if (this.unwritten++ === 0) this.unwrittenSince = now;
    this.latestCause = cause;
    this.latestStack = stack;
    return now - this.lastWrittenAt >= intervalMs;
  }

  /** The failures not yet written, as a line now writes them: how many, and over how many seconds. */
  take(now: number): { failures: number; seconds: number } {
    const taken = { failures: this.unwritten, seconds: seconds(now - this.unwrittenSince) };
    this.unwritten = 0;
    this.lastWrittenAt = now;
    return taken;
  }
}

/** An outage: from the first failure after the dependency last answered, to its next answer. */
interface Outage {
  since: number;
  failuresByReason: Map<string, number>;
  /** Whether a line told of it; if none did, its end is not told either. */
  told: boolean;
}

/** One dependency's failures, as lines: see the top of this file. */
export class DependencyLog {
  private readonly kinds = new Map<string, RepeatedFailure>();
  private outage: Outage | undefined;

  constructor(
    private readonly log: Log,
    readonly name: string,
  ) {}

  /**
   * A request failed because the dependency did, for `reason`; `cause` says how, in one line. `unexpected`:
   * the error, when nobody foresaw it (a reason `other`), so that its stack is written too.
   */
  failed(reason: string, cause: string, unexpected?: unknown): void {
    const now = this.log.now();
    const outage = (this.outage ??= { since: now, failuresByReason: new Map(), told: false });
    outage.failuresByReason.set(reason, (outage.failuresByReason.get(reason) ?? 0) + 1);
    let kind = this.kinds.get(reason);
    if (!kind) this.kinds.set(reason, (kind = new RepeatedFailure()));
    if (!kind.count(now, firstLine(cause), unexpected === undefined ? undefined : stackOf(unexpected), this.log.repeatIntervalMs)) return;
    this.writeFailures(reason, kind, now);
    outage.told = true;
  }

  /** The dependency answered. After failures that ends the outage; otherwise it costs one comparison (it runs on the request path). */
  answered(): void {
    if (this.outage !== undefined) this.recovered(this.outage);
  }

  /** Writes the failures counted but not yet written. */
  flush(): void {
    const now = this.log.now();
    for (const [reason, kind] of this.kinds) if (kind.unwritten > 0) this.writeFailures(reason, kind, now);
  }

  private writeFailures(reason: string, kind: RepeatedFailure, now: number): void {
    const firstOfOutage = this.outage !== undefined && kind.lastWrittenAt < this.outage.since;
    const { latestCause, latestStack } = kind;
    const { failures, seconds } = kind.take(now);
    const fields = { dependency: this.name, reason, failures };
    if (firstOfOutage) {
      this.log.write('ERROR', `${this.name} unavailable (${reason}): ${latestCause}`, { ...fields, event: 'dependency_failed' }, latestStack);
    } else {
      const message = `${this.name} still unavailable (${reason}): ${failures} ${requests(failures)} failed in the last ${seconds} s; the latest: ${latestCause}`;
      this.log.write('ERROR', message, { ...fields, seconds, event: 'dependency_still_failing' }, latestStack);
    }
  }

  private recovered(outage: Outage): void {
    this.outage = undefined;
    // An outage no line told of (its kinds had just written one) ends silently; its failures go in their kinds' next line.
    if (!outage.told) return;
    let unwritten = 0;
    for (const kind of this.kinds.values()) {
      unwritten += kind.unwritten;
      kind.unwritten = 0;
    }
    const byReason = [...outage.failuresByReason];
    const total = byReason.reduce((sum, [, n]) => sum + n, 0);
    const outageSeconds = seconds(this.log.now() - outage.since);
    const reasons = byReason.map(([reason, n]) => `${reason} ${n}`).join(', ');
    this.log.write('INFO', `${this.name} answers again after ${outageSeconds} s; ${total} ${requests(total)} failed meanwhile (${reasons})`, {
      dependency: this.name,
      event: 'dependency_recovered',
      outage_seconds: outageSeconds,
      outage_failures: total,
      failures: unwritten,
    });
  }
}

function requests(n: number): string {
  return n === 1 ? 'request' : 'requests';
}

/** Milliseconds as seconds, to a tenth. */
function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!;
}

function stackOf(error: unknown): string | undefined {
  return error instanceof Error ? error.stack : undefined;
}

/** This process's log: one function, one revision. */
export const log = new Log(readLogContext(process.env));

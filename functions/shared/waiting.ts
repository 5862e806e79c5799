/** Waiting on something slow: never past a deadline, and in batches when many wait at once. */

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** Rejects with `TimeoutError` when `work` has not settled within `ms`; the timer never keeps the process alive. */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} did not answer within ${ms} ms`)), ms).unref();
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Calls that arrive while a batch is in flight wait together and go out as the next batch. A busy
 * instance then makes one round trip per batch instead of one per call, and every caller still gets
 * a result produced after it arrived (it never joins a batch that started before it came).
 *
 * No call waits longer than `deadlineMs`: the batch's first caller starts one timer for the whole batch,
 * and when it fires every caller of that batch still waiting gets `TimeoutError` (the later callers at
 * most one batch-time early), and a batch still gathering is dropped unrun. One timer per batch rather
 * than per call, because functions-framework runs each request in a domain, which makes every timer and
 * promise on the hot path cost async-hook work.
 */
export function gatherWhileBusy<T>(
  runBatch: (size: number) => Promise<T[]>,
  deadlineMs: number,
  what: string,
): () => Promise<T> {
  interface Batch {
    waiters: { resolve: (value: T) => void; reject: (error: unknown) => void }[];
    timer: NodeJS.Timeout;
  }
  let gathering: Batch | undefined;
  let busy = false;

  function startBatch(): Batch {
    const batch: Batch = { waiters: [], timer: undefined! };
    const timeout = new TimeoutError(`${what} did not answer within ${deadlineMs} ms`);
    batch.timer = setTimeout(() => {
      batch.waiters.forEach((waiter) => waiter.reject(timeout));
      // Still waiting behind a batch in flight: nobody is left to run it for, and a later call must start a
      // batch (and a deadline) of its own rather than join one whose deadline has passed.
      if (gathering === batch) gathering = undefined;
    }, deadlineMs).unref();
    return batch;
  }

  async function drain(): Promise<void> {
    busy = true;
    while (gathering) {
      const batch = gathering;
      gathering = undefined;
      try {
        const results = await runBatch(batch.waiters.length);
        batch.waiters.forEach((waiter, i) => waiter.resolve(results[i]!));
      } catch (error) {
        for (const waiter of batch.waiters) waiter.reject(error);
      }
      clearTimeout(batch.timer);
    }
    busy = false;
  }

  return () =>
    new Promise<T>((resolve, reject) => {
      gathering ??= startBatch();
      gathering.waiters.push({ resolve, reject });
      if (!busy) void drain();
    });
}

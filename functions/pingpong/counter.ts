/**
 * Hands out ping numbers. Every caller waits for its own increment to be committed, but the callers
 * waiting at the same moment share one `UPDATE`: while one batch is in the database the next one
 * gathers, so a busy instance makes one round trip per batch instead of one per ping, and the hot
 * row's lock is taken once per batch.
 */

/** Adds `k` pings in one committed statement and returns the count after it. */
export type AddPings = (k: number) => Promise<number>;

/** Resolves with this ping's number: how many pings came before it. */
export type RecordPing = () => Promise<number>;

interface Waiter {
  resolve: (number: number) => void;
  reject: (error: unknown) => void;
}

export function batchPings(addPings: AddPings): RecordPing {
  let gathering: Waiter[] = [];
  let flushing = false;

  async function flush(): Promise<void> {
    flushing = true;
    while (gathering.length > 0) {
      const batch = gathering;
      gathering = [];
      try {
        const countAfter = await addPings(batch.length);
        const first = countAfter - batch.length;
        batch.forEach((waiter, i) => waiter.resolve(first + i));
      } catch (error) {
        for (const waiter of batch) waiter.reject(error);
      }
    }
    flushing = false;
  }

  return () =>
    new Promise<number>((resolve, reject) => {
      gathering.push({ resolve, reject });
      if (!flushing) void flush();
    });
}

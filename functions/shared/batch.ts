/**
 * Calls that arrive while a batch is in flight wait together and go out as the next batch. A busy
 * instance then makes one round trip per batch instead of one per call, and every caller still gets
 * a result produced after it arrived (it never joins a batch that started before it came).
 */
export function gatherWhileBusy<T>(runBatch: (size: number) => Promise<T[]>): () => Promise<T> {
  let gathering: { resolve: (value: T) => void; reject: (error: unknown) => void }[] = [];
  let busy = false;

  async function drain(): Promise<void> {
    busy = true;
    while (gathering.length > 0) {
      const batch = gathering;
      gathering = [];
      try {
        const results = await runBatch(batch.length);
        batch.forEach((waiter, i) => waiter.resolve(results[i]!));
      } catch (error) {
        for (const waiter of batch) waiter.reject(error);
      }
    }
    busy = false;
  }

  return () =>
    new Promise<T>((resolve, reject) => {
      gathering.push({ resolve, reject });
      if (!busy) void drain();
    });
}

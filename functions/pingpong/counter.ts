/**
 * Hands out ping numbers. Every caller waits for its own increment to be committed, but the callers
 * waiting at the same moment share one `UPDATE ... SET n = n + k`: the hot row's lock is taken once
 * per batch, not once per ping, and each caller gets its own number from the batch's range.
 */
import { gatherWhileBusy } from '../shared/waiting';

/** Adds `k` pings in one committed statement and returns the count after it. */
export type AddPings = (k: number) => Promise<number>;

/** Resolves with this ping's number: how many pings came before it. */
export type RecordPing = () => Promise<number>;

export function batchPings(addPings: AddPings, deadlineMs: number): RecordPing {
  return gatherWhileBusy(async (k) => {
    const countAfter = await addPings(k);
    return Array.from({ length: k }, (_, i) => countAfter - k + i);
  }, deadlineMs, 'the database');
}

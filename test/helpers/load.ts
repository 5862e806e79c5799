/** Clients that ping pingpong in a loop while a test breaks things, and what their answers prove about the count. */
import type { ExecutionContext } from 'ava';

/** One request and what became of it. */
export interface Exchange {
  /** Index of the URL it went to. */
  target: number;
  /** `Date.now()` when it was sent and when its answer (or failure) came. */
  sentAt: number;
  answeredAt: number;
  /** Undefined when no HTTP answer came. */
  status?: number;
  body?: string;
  /** Why no answer came: the connection failed, or `hang` when none came within the hang bound. */
  error?: string;
}

export interface PingLoad {
  /** Every exchange so far, in the order the answers came. */
  exchanges: Exchange[];
  /** Lets each client finish its request in flight, then resolves with every exchange. */
  stop(): Promise<Exchange[]>;
}

/** A request unanswered this long counts as hanging (the fuzzing bound); the client gives up on it. */
export const HANG_MS = 5000;

/**
 * `clients` clients sending `GET /pingpong`, client i to `urls[i % urls.length]`, each sending the next
 * request as soon as the previous one answered, over keep-alive connections.
 */
export function startPingLoad(urls: string[], clients: number): PingLoad {
  const exchanges: Exchange[] = [];
  let stopping = false;

  async function client(target: number): Promise<void> {
    while (!stopping) {
      const sentAt = Date.now();
      try {
        const response = await fetch(`${urls[target]}/pingpong`, { signal: AbortSignal.timeout(HANG_MS) });
        const body = await response.text();
        exchanges.push({ target, sentAt, answeredAt: Date.now(), status: response.status, body });
      } catch (error) {
        exchanges.push({ target, sentAt, answeredAt: Date.now(), error: describeFailure(error) });
        // A process that is down refuses at once; without a pause this client would spin on its refusals.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  const running = Promise.all(Array.from({ length: clients }, (_, i) => client(i % urls.length)));
  return {
    exchanges,
    stop: async () => {
      stopping = true;
      await running;
      return exchanges;
    },
  };
}

function describeFailure(error: unknown): string {
  if ((error as Error).name === 'TimeoutError') return 'hang';
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? String(error);
}

/** The number N of each `200 pong N`, in the order the answers came. */
export function acknowledgedPongs(exchanges: Exchange[]): number[] {
  return exchanges.filter((exchange) => exchange.status === 200).map((exchange) => pongNumber(exchange.body!));
}

function pongNumber(body: string): number {
  const match = /^pong (\d+)$/.exec(body);
  if (!match) throw new Error(`a 200 that is not "pong N": ${JSON.stringify(body.slice(0, 200))}`);
  return Number(match[1]);
}

/** What the acknowledged pings say about the count Postgres ended with. */
export interface PingAccount {
  acknowledged: number;
  /** Acknowledged pings the final count does not cover, plus numbers handed out twice: must be 0. */
  lost: number;
  highest: number;
}

/**
 * Asserts that every acknowledged ping is still counted: each N was acknowledged once, and the final
 * count covers the highest N (pong N is the count before the increment, so it needs a count of N + 1).
 * Unacknowledged pings may have been counted too (committed, then the answer was cut off), so the
 * count may be higher, never lower.
 */
export function assertNoAcknowledgedPingLost(t: ExecutionContext, exchanges: Exchange[], finalCount: number): PingAccount {
  const pongs = acknowledgedPongs(exchanges);
  const distinct = new Set(pongs);
  const highest = Math.max(-1, ...pongs);
  const uncounted = pongs.filter((n) => n >= finalCount).length;
  const lost = uncounted + (pongs.length - distinct.size);
  t.is(distinct.size, pongs.length, 'no pong N is acknowledged twice');
  t.true(finalCount >= highest + 1, `final count ${finalCount} covers the highest acknowledged pong ${highest}`);
  t.true(distinct.size <= finalCount, `${distinct.size} distinct acknowledged pongs fit in the final count ${finalCount}`);
  t.is(lost, 0, 'acknowledged pings lost');
  return { acknowledged: pongs.length, lost, highest };
}

/** The exchanges sent at or after `from` and answered at or before `to`. */
export function within(exchanges: Exchange[], from: number, to: number): Exchange[] {
  return exchanges.filter((exchange) => exchange.sentAt >= from && exchange.answeredAt <= to);
}

/** Resolves when a `200 pong` from `target` answers a request sent at or after `since`; rejects after `ms`. */
export async function waitForPong(load: PingLoad, target: number, since: number, ms: number): Promise<number> {
  const giveUpAt = Date.now() + ms;
  // Answers come in order, so each look starts where the last one ended: the list grows by thousands a second.
  for (let seen = 0; ; ) {
    for (; seen < load.exchanges.length; seen++) {
      const exchange = load.exchanges[seen]!;
      if (exchange.target === target && exchange.status === 200 && exchange.sentAt >= since) return exchange.answeredAt;
    }
    if (Date.now() > giveUpAt) throw new Error(`no pong from target ${target} within ${ms} ms`);
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

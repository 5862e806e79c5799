/**
 * Hostile upstreams, the slow part: huge, endless and compressed floods (refused at a cap while
 * image-proxy's memory is sampled from /proc) and bodies that trickle in one byte every 200 ms
 * (a 504 at the 5 s deadline, the upstream connection closed by us). Redirects and broken framing,
 * which are fast, run in test/integration/hostile-upstreams.test.ts with every `npm test`.
 */
import { readFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { hostileSetUp, type HostileSetUp } from '../helpers/hostile-upstream';
import type { HostileAnswer, HostileExchange, PixabayRoute } from '../helpers/pixabay';

const DEADLINE_MS = 5000;
// The deadline is a timer in a child process on two shared, busy vCPUs: it may fire late. 2.5 s is
// far less than any hang would take, and more than the lateness seen on this machine.
const LATE_MARGIN_MS = 2500;

test('floods: huge, endless and gzip-bombed bodies are refused at the cap, memory stays bounded, nothing reaches our client', async (t) => {
  const setUp = await hostileSetUp(t);
  const { pixabay, forbidden, imageId, ask, asked, keyLeaks, proxy } = setUp;
  t.is((await ask(`/images/${imageId}`)).status, 200, 'warmed up: one image served');
  const memory = sampleRss(t, proxy.pid());

  const floods: [string, HostileAnswer][] = [
    ['50 MB with its content-length', { kind: 'flood', megabytes: 50, sized: true }],
    ['50 MB chunked', { kind: 'flood', megabytes: 50, sized: false }],
    ['an endless chunked body', { kind: 'flood', megabytes: Infinity, sized: false }],
    ['512 MB gzip-compressed', { kind: 'gzip-bomb', megabytes: 512 }],
  ];
  const reasons: Record<PixabayRoute, RegExp> = { api: /^Pixabay answered more than 1 MB, which is no search result\n$/, images: /^the image is larger than 10 MB\n$/ };
  const sent: string[] = [];
  for (const [i, [name, flood]] of floods.entries()) {
    for (const route of ['api', 'images'] as const) {
      pixabay.setHostile(route, flood);
      const got = await ask(route === 'api' ? `/api/images?q=flood+${i}` : `/images/${imageId}?size=preview`);
      pixabay.setHostile(route, undefined);
      t.is(got.status, 503, `${route}, ${name}`);
      t.regex(got.text, reasons[route], `${route}, ${name}`);
      t.true(got.ms < DEADLINE_MS, `${route}, ${name}: refused at the cap (${got.ms} ms), not at the deadline`);
      const exchange = await closed(pixabay.hostileExchanges.at(-1)!, 2000);
      t.truthy(exchange.closedAt, `${route}, ${name}: we closed the upstream connection`);
      sent.push(`${route} ${name}: ${Math.round(exchange.bytesSent / 1024)} KB on the wire before we hung up`);
    }
  }
  const { baselineKb, peakKb, samples } = memory.stop();
  // An uncapped reader holds the whole flood: 50 MB (about 3x that as a string and parsed JSON), or
  // whatever an endless body brings in 5 s. The caps are 1 MB and 10 MB, each held once or twice over
  // while it is read and concatenated; 100 MB over the start leaves room for the garbage collector's pace.
  t.true(peakKb - baselineKb < 100 * 1024, `peak RSS ${peakKb} kB, ${peakKb - baselineKb} kB over the ${baselineKb} kB it started from`);
  t.is((await ask(`/images/${imageId}`)).status, 200, 'still serving afterwards');
  t.is(forbidden.contacts(), 0);
  t.is(keyLeaks(), 0, 'the key is in no answer and no log line');
  t.log(`floods: ${floods.length} kinds x 2 routes, ${asked()} requests; RSS ${mb(baselineKb)} MB at start, peak ${mb(peakKb)} MB (${samples} samples, VmHWM ${mb(memory.highWaterKb())} MB); key leaks ${keyLeaks()}`);
  for (const line of sent) t.log(line);
});

for (const sized of [true, false]) {
  test(`a trickle (1 byte / 200 ms) ${sized ? 'with' : 'without'} a content-length: 504 at the deadline from the API and the image server, and we hang up`, async (t) => {
    const setUp = await hostileSetUp(t);
    const { pixabay, imageId, ask, keyLeaks } = setUp;
    for (const route of ['api', 'images'] as const) pixabay.setHostile(route, { kind: 'trickle', msPerByte: 200, sized });
    const [search, image] = await Promise.all([ask('/api/images?q=trickle'), ask(`/images/${imageId}?size=preview`)]);

    for (const [route, got, reason] of [
      ['api', search, 'Pixabay did not answer within 5000 ms\n'],
      ['images', image, "Pixabay's image server did not answer within 5000 ms\n"],
    ] as const) {
      t.is(got.status, 504, route);
      t.is(got.text, reason, route);
      t.false(got.broken, route);
      t.true(got.ms >= DEADLINE_MS - 100 && got.ms < DEADLINE_MS + LATE_MARGIN_MS, `${route}: answered after ${got.ms} ms`);
      const exchange = await closed(pixabay.hostileExchanges.find((candidate) => candidate.route === route)!, LATE_MARGIN_MS);
      const heldMs = exchange.closedAt! - exchange.startedAt;
      t.true(heldMs < DEADLINE_MS + LATE_MARGIN_MS, `${route}: the upstream connection was closed after ${heldMs} ms`);
      t.log(`${route}: 504 after ${got.ms} ms; upstream closed after ${heldMs} ms, ${exchange.bytesSent} bytes trickled`);
    }
    t.is(keyLeaks(), 0, 'the key is in no answer and no log line');
    assertNothingLeftOpen(t, setUp);
  });
}

/** The exchange once its connection has closed, or as it is after `ms`. */
async function closed(exchange: HostileExchange, ms: number): Promise<HostileExchange> {
  const giveUpAt = Date.now() + ms;
  while (exchange.closedAt === undefined && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 20));
  return exchange;
}

function assertNothingLeftOpen(t: ExecutionContext, { pixabay }: HostileSetUp): void {
  t.true(pixabay.hostileExchanges.every((exchange) => exchange.closedAt !== undefined), 'every hostile exchange was closed');
}

/** Samples the process's VmRSS every 10 ms until `stop()`; the first sample is the baseline. */
function sampleRss(t: ExecutionContext, pid: number) {
  const read = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  const baselineKb = read('VmRSS');
  let peakKb = baselineKb;
  let samples = 1;
  const timer = setInterval(() => {
    peakKb = Math.max(peakKb, read('VmRSS'));
    samples++;
  }, 10);
  t.teardown(() => clearInterval(timer));
  return {
    stop: () => {
      clearInterval(timer);
      return { baselineKb, peakKb, samples };
    },
    highWaterKb: () => read('VmHWM'),
  };
}

function mb(kb: number): string {
  return (kb / 1024).toFixed(0);
}

/** The fuzzer's generator (test/helpers/fuzz.ts): a seed replays the same requests, and 2,000 of them try everything the issue lists. */
import { createHash } from 'node:crypto';
import test from 'ava';
import { generateRequest, Random, type FuzzRequest } from '../helpers/fuzz';

const TARGET = { port: 8080, routes: ['/', '/api/images', '/images/1000001'], params: ['q', 'page'] };

function generate(seed: number, count: number): FuzzRequest[] {
  const random = new Random(seed);
  return Array.from({ length: count }, (_, i) => generateRequest(random, TARGET, i));
}

function fingerprint(requests: FuzzRequest[]): string {
  const hash = createHash('sha256');
  for (const request of requests) hash.update(request.bytes).update(JSON.stringify(request.stall ?? null));
  return hash.digest('hex');
}

test('the same seed gives the same requests, another seed others', (t) => {
  t.is(fingerprint(generate(42, 300)), fingerprint(generate(42, 300)));
  t.not(fingerprint(generate(42, 300)), fingerprint(generate(43, 300)));
});

test('2,000 requests try every kind of bad input the issue names, bodies up to 1 MB', (t) => {
  const requests = generate(7, 2000);
  const kinds = new Set(requests.flatMap((request) => request.kinds));
  const expected = [
    'method:other', 'method:made-up', 'method:invalid',
    'path:pieces', 'path:doubled', 'path:long', 'path:invalid-utf8',
    'query:repeated', 'query:nested', 'query:thousands', 'query:huge-value', 'query:invalid-utf8',
    'header:hundreds', 'header:huge', 'header:invalid-utf8', 'header:malformed',
    'body:1mb', 'body:json-invalid', 'body:urlencoded-deep', 'body:encoding-gzip',
    'framing:chunked', 'framing:chunked-bad', 'framing:cl-and-te', 'framing:two-lengths',
    'stall:finish', 'stall:close',
  ];
  t.deepEqual(expected.filter((kind) => !kinds.has(kind)), []);
  const biggestBody = Math.max(...requests.map((request) => request.bytes.length - request.bytes.indexOf('\r\n\r\n') - 4));
  t.true(biggestBody > 900_000 && biggestBody <= 1_048_576 + 70_000, `the biggest body is ${biggestBody} bytes (chunk framing may add a little)`);
  const stalls = requests.filter((request) => request.stall).map((request) => request.stall!.ms);
  t.true(Math.max(...stalls) <= 1500, 'stalls stay within bounds');
});

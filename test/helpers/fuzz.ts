/**
 * A seeded HTTP fuzzer. Requests are generated from a seed (the same seed gives the same requests, so a
 * failure replays with `FUZZ_SEED`), and sent as raw bytes over TCP: malformed framing and invalid
 * UTF-8 really reach the server, which no HTTP client would send. `sendRaw` tells what came back.
 */
import { randomInt } from 'node:crypto';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';

/** mulberry32: a tiny PRNG, good enough to pick inputs and the same on every machine. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `FUZZ_SEED` when set (to replay a run), else a fresh one; the test logs it either way. */
export function fuzzSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env.FUZZ_SEED?.trim();
  if (!given) return randomInt(2 ** 32);
  const seed = Number(given);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`FUZZ_SEED must be a whole number, got "${given}"`);
  return seed >>> 0;
}

/** The choices a generator makes, all from one seeded stream. */
export class Random {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** A whole number in [min, max). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length)]!;
  }
  /** Calls one of `choices`, each as likely as its weight. */
  oneOf<T>(choices: ReadonlyArray<readonly [number, () => T]>): T {
    let roll = this.next() * choices.reduce((sum, [weight]) => sum + weight, 0);
    for (const [weight, choose] of choices) {
      if ((roll -= weight) < 0) return choose();
    }
    return choices[choices.length - 1]![1]();
  }
  word(min = 1, max = 10, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
    let out = '';
    for (let i = this.int(min, max + 1); i > 0; i--) out += alphabet[this.int(0, alphabet.length)];
    return out;
  }
  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(0, 256);
    return out;
  }
}

/** What the fuzzer knows of a function: where it listens and what it serves. */
export interface FuzzTarget {
  port: number;
  /** Paths the function really answers (they may carry a query). */
  routes: readonly string[];
  /** The query parameters it reads. */
  params: readonly string[];
}

export interface FuzzRequest {
  index: number;
  /** What this request tries, e.g. `method:made-up`, `query:thousands`, `framing:chunked-bad`. */
  kinds: string[];
  /** As sent: the client reads a HEAD answer differently. */
  method: string;
  /** The whole request as it goes on the wire. */
  bytes: Buffer;
  /** Send `bytes` up to `at`, wait `ms`, then send the rest or hang up. */
  stall?: { at: number; ms: number; then: 'finish' | 'close' };
}

const STANDARD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE'];
const MADE_UP_METHODS = ['BREW', 'PROPFIND', 'PURGE', 'SEARCH', 'QUERY', 'LINK', 'MKCOL', 'M-SEARCH', 'CONNECT', 'SOURCE'];
const INVALID_METHODS = ['', 'G ET', 'get', 'GE\tT', 'G\0T', '\xff\xfeGET', 'GET\x7f', '(GET)', 'GET:', '\u00e9T'];

// Path pieces that break naive routers or decoders: traversal, doubled and encoded slashes, and
// percent-encoding that is valid, truncated, not hex, overlong, a surrogate, or beyond U+10FFFF.
const PATH_PIECES = [
  '..', '.', '', '%2F', '%2f', '%2e%2e', '%2E%2E%2F', '%00', '%', '%Z', '%ZZ', '%E0%A4%A', '%C0%AF', '%E0%80%AF',
  '%ED%A0%80', '%F4%90%80%80', '%FF', '%E2%9C%93', '%F0%9F%98%80', 'caf%C3%A9', ';jsessionid=1', '~root', '\\', '%5C',
  '<script>', '%3Cscript%3E', 'a%20b', '+', '*', '@', 'images', 'api', 'index.html', 'favicon.ico', 'robots.txt',
];
const INVALID_UTF8 = [[0xff], [0xc3, 0x28], [0x80], [0xe2, 0x82], [0xf0, 0x28, 0x8c, 0xbc], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xfe, 0xfe]];

const QUERY_VALUES = [
  '', '1', '0', '-1', '25', '26', '999', '1e3', '1.5', 'NaN', 'Infinity', '99999999999999999999', '0x10', '%201', '%20', '+++',
  'web', 'preview', 'WEB', 'red%20sky', 'red+sky', 'RED++SKY', 'caf%C3%A9', '%E0%A4%A', '%ZZ', '%', '%C0%AF', '%F0%9F%98%80', '%00',
  '%3Cscript%3Ealert(1)%3C%2Fscript%3E', '<svg/onload=alert(1)>', 'javascript:alert(1)', '__proto__', 'constructor', '[]', '{}',
  '%E2%80%AE', '%EF%BB%BF', 'a'.repeat(101), '%F0%9F%98%80'.repeat(60),
];

/** One request, made only from `random`: call in index order and the same seed gives the same requests. */
export function generateRequest(random: Random, target: FuzzTarget, index: number): FuzzRequest {
  const kinds: string[] = [];
  const method = chooseMethod(random, kinds);
  const requestTarget = Buffer.concat([choosePath(random, target, kinds), chooseQuery(random, target, kinds)]);
  const version = random.chance(0.95) ? 'HTTP/1.1' : random.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/9.9', 'http/1.1', 'HTTP/1.1 x', '']);
  if (version !== 'HTTP/1.1') kinds.push(`version:${version || 'none'}`);
  const { lines: bodyHeaders, payload } = chooseBody(random, kinds);
  // Node's own parser, after an `Upgrade` request's head, neither reads nor rejects a malformed chunked
  // body: the request waits for Node's requestTimeout (300 s), before any function code runs, as for a
  // client that never finishes. Not ours to fix (the server is functions-framework's), so not sent.
  const upgradeAllowed = !kinds.includes('framing:chunked-bad');
  const headers = chooseHeaders(random, target, kinds, upgradeAllowed);

  const head = Buffer.concat([
    Buffer.from(`${method} `, 'latin1'),
    requestTarget,
    Buffer.from(` ${version}\r\n`, 'latin1'),
    ...[...headers, ...bodyHeaders].map((line) => Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'latin1') : line, CRLF])),
    CRLF,
  ]);
  const bytes = Buffer.concat([head, payload]);
  const request: FuzzRequest = { index, kinds, method, bytes };
  if (random.chance(0.05)) {
    const then = random.chance(0.5) ? 'finish' : 'close';
    request.stall = { at: random.int(1, bytes.length), ms: random.int(200, 1500), then };
    kinds.push(`stall:${then}`);
  }
  return request;
}

const CRLF = Buffer.from('\r\n');

function chooseMethod(random: Random, kinds: string[]): string {
  return random.oneOf([
    [55, () => 'GET'],
    [10, () => 'HEAD'],
    [15, () => (kinds.push('method:other'), random.pick(STANDARD_METHODS))],
    [10, () => (kinds.push('method:made-up'), random.chance(0.5) ? random.pick(MADE_UP_METHODS) : random.word(2, 12, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ-_'))],
    [6, () => (kinds.push('method:invalid'), random.pick(INVALID_METHODS))],
  ]);
}

function choosePath(random: Random, target: FuzzTarget, kinds: string[]): Buffer {
  const route = random.pick(target.routes);
  return random.oneOf<Buffer>([
    [45, () => Buffer.from(route, 'latin1')],
    [25, () => {
      kinds.push('path:pieces');
      const segments = Array.from({ length: random.int(1, 7) }, () => pathSegment(random));
      const start = random.chance(0.5) ? route.split('?')[0]!.replace(/\/$/, '') : '';
      return Buffer.concat([Buffer.from(`${start}/`, 'latin1'), ...segments.flatMap((segment, i) => (i ? [Buffer.from('/'), segment] : [segment]))]);
    }],
    [8, () => (kinds.push('path:doubled'), Buffer.from(`/${route.replace(/\//g, random.pick(['//', '/./', '/x/../', '%2F']))}`, 'latin1'))],
    [8, () => {
      kinds.push('path:long');
      // Near and past the 16 KB Node allows for the request line and headers together.
      const length = random.pick([1000, 4000, 8000, 15_000, 17_000]);
      return Buffer.from(`/${random.word(1, 20)}/`.repeat(Math.ceil(length / 10)).slice(0, length), 'latin1');
    }],
    [7, () => (kinds.push('path:invalid-utf8'), Buffer.concat([Buffer.from(route.split('?')[0]!), Buffer.from(random.pick(INVALID_UTF8))]))],
    [7, () => (kinds.push('path:odd-form'), Buffer.from(random.pick(['*', 'pingpong', `http://127.0.0.1:${target.port}${route}`, `http://evil.example${route}`, '//evil.example/', '/%', '?', `${route}#frag`]), 'latin1'))],
  ]);
}

function pathSegment(random: Random): Buffer {
  if (random.chance(0.05)) return Buffer.from(random.pick(INVALID_UTF8));
  return Buffer.from(random.chance(0.6) ? random.pick(PATH_PIECES) : random.word(1, 12), 'latin1');
}

function chooseQuery(random: Random, target: FuzzTarget, kinds: string[]): Buffer {
  const name = () => (target.params.length && random.chance(0.7) ? random.pick(target.params) : random.word(1, 8));
  const value = () => (random.chance(0.7) ? random.pick(QUERY_VALUES) : random.word(0, 30, 'abcdefghijklmnopqrstuvwxyz0123456789-_.~%+&=;'));
  const pairs = (count: number) => Array.from({ length: count }, () => `${name()}=${value()}`).join('&');
  return random.oneOf<Buffer>([
    [40, () => Buffer.alloc(0)],
    [25, () => (kinds.push('query:pairs'), Buffer.from(`?${pairs(random.int(1, 7))}`, 'latin1'))],
    [8, () => (kinds.push('query:repeated'), Buffer.from(`?${Array.from({ length: random.int(2, 6) }, () => `${name()}=${value()}`).join('&')}&${name()}=a&${name()}=b`, 'latin1'))],
    [8, () => {
      kinds.push('query:nested');
      const key = name();
      return Buffer.from(`?${random.pick([`${key}[a][b]=1`, `${key}[]=1&${key}[]=2`, `${key}[0]=x`, `${key}[__proto__][x]=1`, '__proto__[polluted]=1', 'constructor[prototype][x]=1', `${key}${'[a]'.repeat(40)}=1`, `${key}.a.b=1`])}`, 'latin1');
    }],
    [5, () => (kinds.push('query:thousands'), Buffer.from(`?${Array.from({ length: random.int(1000, 4000) }, (_, i) => `${random.chance(0.1) ? name() : `k${i}`}=${i}`).join('&')}`.slice(0, 15_000), 'latin1'))],
    [5, () => (kinds.push('query:huge-value'), Buffer.from(`?${name()}=${'x'.repeat(random.pick([500, 5000, 12_000, 16_500]))}`, 'latin1'))],
    [5, () => (kinds.push('query:odd'), Buffer.from(random.pick(['?', '?&&&', '?=', '?==', '?q', '?q&q', '?&q=', '?%', '?%3D=%26', '?q=a;b', '?q=a#b']), 'latin1'))],
    [4, () => (kinds.push('query:invalid-utf8'), Buffer.concat([Buffer.from(`?${name()}=`), Buffer.from(random.pick(INVALID_UTF8))]))],
  ]);
}

type HeaderLine = string | Buffer;

function chooseHeaders(random: Random, target: FuzzTarget, kinds: string[], upgradeAllowed: boolean): HeaderLine[] {
  const lines: HeaderLine[] = [];
  random.oneOf([
    [90, () => lines.push(`Host: 127.0.0.1:${target.port}`)],
    [4, () => kinds.push('header:no-host')],
    [6, () => (kinds.push('header:odd-host'), lines.push(...random.pick([['Host: a', 'Host: b'], ['Host: <script>'], ['Host:'], [`Host: ${'h'.repeat(300)}`]])))],
  ]);
  for (let i = random.int(0, 6); i > 0; i--) lines.push(commonHeader(random));
  if (random.chance(0.3)) {
    const connection = random.pick(['Connection: close', 'Connection: keep-alive', 'Connection: Upgrade\r\nUpgrade: websocket', 'Connection: close, te']);
    lines.push(upgradeAllowed || !connection.includes('Upgrade') ? connection : 'Connection: keep-alive');
  }
  random.oneOf([
    [82, () => undefined],
    [5, () => {
      kinds.push('header:hundreds');
      for (let i = random.int(100, 700); i > 0; i--) lines.push(`X-Fuzz-${i}: ${random.word(1, 12)}`);
    }],
    [4, () => {
      kinds.push('header:huge');
      // Node allows 16 KB of request line and headers together: some fit, some do not.
      lines.push(`X-Big: ${'b'.repeat(random.pick([8000, 14_000, 15_500, 16_300, 17_000, 24_000]))}`);
    }],
    [5, () => {
      kinds.push('header:invalid-utf8');
      lines.push(Buffer.concat([Buffer.from(`${random.pick(['User-Agent', 'Cookie', 'X-Thing', 'Accept-Language'])}: a`), Buffer.from(random.pick(INVALID_UTF8)), Buffer.from('b')]));
    }],
    [4, () => {
      kinds.push('header:malformed');
      lines.push(random.pick(['Bad Name: x', 'no colon here', ': empty-name', 'X-Fold: a\r\n folded', 'X-Ctl: a\x01b', 'X-Nul: a\0b', 'X-Lf: a\nX-Other: b', '\tX-Tab: x', 'X-Cr: a\rb']));
    }],
  ]);
  return lines;
}

function commonHeader(random: Random): string {
  return random.pick([
    `User-Agent: ${random.pick(['curl/8.5.0', 'Mozilla/5.0', 'sqlmap/1.7', '() { :; }; echo vulnerable', "'><script>alert(1)</script>"])}`,
    `Accept: ${random.pick(['*/*', 'text/html', 'application/json', 'image/*', 'x/y;q=bad', ''])}`,
    `Accept-Encoding: ${random.pick(['gzip', 'br', 'gzip, deflate, br', '*', 'identity;q=0', 'garbage'])}`,
    `Accept-Language: ${random.pick(['en', 'de-CH,de;q=0.9', '*', 'x'.repeat(200)])}`,
    `Cookie: ${random.pick(['a=1', 'session=<script>', 'a=1; a=2', '=', ';;;'])}`,
    `Referer: ${random.pick(['https://example.com/', 'javascript:alert(1)', 'not a url'])}`,
    `X-Forwarded-For: ${random.pick(['1.2.3.4', '1.2.3.4, ::1', 'unknown', '999.999.999.999', ''])}`,
    `X-Forwarded-Proto: ${random.pick(['https', 'gopher', ''])}`,
    `X-Forwarded-Host: ${random.pick(['evil.example', '<script>', ''])}`,
    `If-None-Match: ${random.pick(['"x"', '*', 'W/"garbage'])}`,
    `If-Modified-Since: ${random.pick(['Wed, 21 Oct 2015 07:28:00 GMT', 'yesterday'])}`,
    `Range: ${random.pick(['bytes=0-1', 'bytes=-1', 'bytes=9-1', 'lines=1-2', 'bytes=' + '0-1,'.repeat(100)])}`,
    `Expect: ${random.pick(['100-continue', 'teapot'])}`,
    `Authorization: ${random.pick(['Basic Og==', 'Bearer x', 'Basic %%%'])}`,
    `traceparent: ${random.pick(['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'garbage'])}`,
    `X-Cloud-Trace-Context: ${random.pick(['105445aa7843bc8bf206b12000100000/1;o=1', `${'a'.repeat(3000)}/x`, '/'])}`,
    `function-execution-id: ${random.pick(['abc', '<script>', ''])}`,
    `Origin: ${random.pick(['https://evil.example', 'null'])}`,
  ]);
}

const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'application/json; charset=latin-9000', 'text/plain',
  'text/plain; charset=klingon', 'application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-16',
  'application/octet-stream', 'multipart/form-data; boundary=x', 'application/cloudevents+json', 'image/png', '*/*', 'garbage',
];

/** A body with its headers: Content-Type and Content-Encoding, and framing done right, wrong, or both ways at once. */
function chooseBody(random: Random, kinds: string[]): { lines: HeaderLine[]; payload: Buffer } {
  if (random.chance(0.65)) return { lines: [], payload: Buffer.alloc(0) };
  const lines: HeaderLine[] = [];
  const size = random.oneOf([
    [70, () => random.int(0, 2000)],
    [20, () => random.int(2000, 100_000)],
    [6, () => random.int(100_000, 500_000)],
    [4, () => (kinds.push('body:1mb'), random.int(900_000, 1_048_577))],
  ]);
  const contentType = random.chance(0.9) ? random.pick(CONTENT_TYPES) : undefined;
  if (contentType) lines.push(`Content-Type: ${contentType}`);
  let payload = bodyFor(random, contentType ?? '', size, kinds);
  if (random.chance(0.12)) {
    const encoding = random.pick(['gzip', 'gzip', 'deflate', 'br', 'x-unknown', 'gzip, gzip', 'identity']);
    kinds.push(`body:encoding-${encoding}`);
    lines.push(`Content-Encoding: ${encoding}`);
    // Mostly garbage that claims to be gzip; sometimes real gzip, to reach the parser behind it.
    if (encoding === 'gzip' && random.chance(0.4)) payload = gzipSync(payload);
  }
  kinds.push(`body:${contentType?.split(';')[0] ?? 'untyped'}`);
  return random.oneOf([
    [70, () => ({ lines: [...lines, `Content-Length: ${payload.length}`], payload })],
    [12, () => (kinds.push('framing:chunked'), { lines: [...lines, 'Transfer-Encoding: chunked'], payload: chunked(random, payload) })],
    [5, () => {
      kinds.push('framing:chunked-bad');
      const broken = random.pick([
        Buffer.from('zz\r\nhello\r\n0\r\n\r\n'),
        Buffer.from('5\r\nhelloEXTRA\r\n0\r\n\r\n'),
        Buffer.from('5;ext="\x01"\r\nhello\r\n0\r\n\r\n'),
        Buffer.from('-5\r\nhello\r\n0\r\n\r\n'),
        Buffer.from('fffffffffffffffffff\r\n'),
        Buffer.from('5\nhello\n0\n\n'),
      ]);
      return { lines: [...lines, 'Transfer-Encoding: chunked'], payload: broken };
    }],
    [4, () => (kinds.push('framing:cl-and-te'), { lines: [...lines, `Content-Length: ${payload.length}`, 'Transfer-Encoding: chunked'], payload: chunked(random, payload) })],
    [3, () => (kinds.push('framing:two-lengths'), { lines: [...lines, `Content-Length: ${payload.length}`, `Content-Length: ${payload.length + 1}`], payload })],
    [3, () => (kinds.push('framing:bad-length'), { lines: [...lines, `Content-Length: ${random.pick(['-1', 'abc', '1e3', '0x10', ' ', '99999999999999999999999'])}`], payload })],
    [3, () => (kinds.push('framing:te-not-chunked'), { lines: [...lines, `Transfer-Encoding: ${random.pick(['gzip', 'chunked, gzip', 'identity', 'xchunked'])}`], payload })],
    // Bytes past the declared length: the server reads them as a second, pipelined request.
    [3, () => (kinds.push('framing:longer-than-length'), { lines: [...lines, `Content-Length: ${Math.floor(payload.length / 2)}`], payload })],
  ]);
}

function bodyFor(random: Random, contentType: string, size: number, kinds: string[]): Buffer {
  const filler = (text: string) => Buffer.from(text.repeat(Math.ceil(size / Math.max(1, text.length))).slice(0, size), 'latin1');
  if (contentType.includes('json')) {
    return random.oneOf([
      [40, () => filler(JSON.stringify({ q: 'red sky', page: 1, n: [1, 2, 3] }))],
      [20, () => (kinds.push('body:json-invalid'), filler('{"a": [1, 2, tru'))],
      [20, () => (kinds.push('body:json-deep'), Buffer.from(`${'['.repeat(Math.min(size, 200_000))}${']'.repeat(Math.min(size, 200_000))}`))],
      [20, () => Buffer.from(JSON.stringify({ __proto__: { polluted: true }, constructor: { prototype: { x: 1 } }, pad: 'p'.repeat(size) }))],
    ]);
  }
  if (contentType.includes('urlencoded')) {
    return random.oneOf([
      [40, () => filler('a=1&b=2&')],
      [30, () => (kinds.push('body:urlencoded-deep'), Buffer.from(`a${'[b]'.repeat(random.int(10, 5000))}=1`))],
      [30, () => (kinds.push('body:urlencoded-many'), Buffer.from(Array.from({ length: random.int(500, 5000) }, (_, i) => `k${i}[${i}]=${i}`).join('&')))],
    ]);
  }
  if (random.chance(0.3)) return filler(random.bytes(1024).toString('latin1'));
  return filler(random.word(10, 60, 'abcdefghijklmnopqrstuvwxyz<>"\'&%;= \n'));
}

function chunked(random: Random, payload: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < payload.length; ) {
    const size = Math.min(payload.length - at, random.int(1, 70_000));
    parts.push(Buffer.from(`${size.toString(16)}${random.chance(0.1) ? ';ext=1' : ''}\r\n`), payload.subarray(at, at + size), CRLF);
    at += size;
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

/** A request written by hand: `target` goes on the request line as it is, `headers` are whole lines. */
export function rawRequest(method: string, target: string, headers: readonly string[], index = 0): FuzzRequest {
  const head = [`${method} ${target} HTTP/1.1`, ...headers, 'Connection: close', '', ''].join('\r\n');
  return { index, kinds: ['by-hand'], method, bytes: Buffer.from(head, 'latin1') };
}

/** How an exchange ended, from the client's side. */
export type Ending =
  /** A whole response arrived. */
  | 'answered'
  /** The server closed (or reset) the connection; `status` says whether a response came first. */
  | 'closed'
  /** The client hung up during its stall, as the request said: there was nothing to wait for. */
  | 'client-closed'
  /** Neither an answer nor a close within the limit after the client finished sending. */
  | 'hung';

export interface Outcome {
  request: FuzzRequest;
  ending: Ending;
  /** The first final status line's code, when one came. */
  status?: number;
  /** Response headers, names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
  /** Everything the server sent, for scanning (e.g. for a secret). */
  raw: Buffer;
  /** From when the client finished sending (or stopped stalling) to the answer or close; 0 if that came first. */
  waitedMs: number;
}

/** Sends one request over a fresh connection and waits at most `hangAfterMs`, once it is all sent, for the answer or a close. */
export function sendRaw(port: number, request: FuzzRequest, hangAfterMs = 5000): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let sentAt: number | undefined;
    let done = false;
    let hangTimer: NodeJS.Timeout | undefined;
    let stallTimer: NodeJS.Timeout | undefined;

    const finish = (ending: Ending) => {
      if (done) return;
      done = true;
      clearTimeout(hangTimer);
      clearTimeout(stallTimer);
      socket.destroy();
      const raw = Buffer.concat(received);
      const parsed = parseResponse(raw, request.method === 'HEAD');
      const waitedMs = sentAt === undefined ? 0 : Math.max(0, performance.now() - sentAt);
      resolve({ request, ending, status: parsed?.status, headers: parsed?.headers ?? {}, body: parsed?.body ?? Buffer.alloc(0), raw, waitedMs });
    };
    const sentAll = () => {
      sentAt = performance.now();
      hangTimer = setTimeout(() => finish('hung'), hangAfterMs);
    };

    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      if (parseResponse(Buffer.concat(received), request.method === 'HEAD')?.complete) finish('answered');
    });
    // A reset is the server's way of closing too (e.g. after a 431 while we were still writing).
    socket.on('error', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('connect', () => {
      const { stall, bytes } = request;
      if (!stall) return void socket.write(bytes, () => !done && sentAll());
      socket.write(bytes.subarray(0, stall.at));
      stallTimer = setTimeout(() => {
        if (done) return;
        if (stall.then === 'close') return finish('client-closed');
        socket.write(bytes.subarray(stall.at), () => !done && sentAll());
      }, stall.ms);
    });
  });
}

interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The body is all there by its own framing (a close may still end a response that has none). */
  complete: boolean;
}

/** The first final response in `raw` (1xx skipped), as far as it has arrived; undefined before its head has. */
export function parseResponse(raw: Buffer, toHead: boolean): ParsedResponse | undefined {
  let rest = raw;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine = '', ...headerLines] = rest.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine)?.[1] ?? NaN);
    rest = rest.subarray(end + 4);
    if (status >= 100 && status < 200) continue;
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      headers[name] = headers[name] === undefined ? line.slice(colon + 1).trim() : `${headers[name]}, ${line.slice(colon + 1).trim()}`;
    }
    if (toHead || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0), complete: true };
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) return { status, headers, ...dechunk(rest) };
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      return { status, headers, body: rest.subarray(0, length), complete: rest.length >= length };
    }
    return { status, headers, body: rest, complete: false };
  }
}

function dechunk(raw: Buffer): { body: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    if (lineEnd < 0) return { body: Buffer.concat(parts), complete: false };
    const size = parseInt(raw.subarray(at, lineEnd).toString('latin1'), 16);
    // The last chunk, then trailers if any, then an empty line.
    if (size === 0) return { body: Buffer.concat(parts), complete: raw.indexOf('\r\n\r\n', lineEnd) >= 0 };
    if (raw.length < lineEnd + 2 + size + 2) return { body: Buffer.concat(parts), complete: false };
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/** Runs `count` requests, `concurrency` at a time, generated in index order from `seed`. */
export async function fuzz(target: FuzzTarget, seed: number, count: number, concurrency: number, hangAfterMs = 5000): Promise<Outcome[]> {
  const random = new Random(seed);
  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const request = generateRequest(random, target, next++);
      outcomes.push(await sendRaw(target.port, request, hangAfterMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return outcomes.sort((a, b) => a.request.index - b.request.index);
}

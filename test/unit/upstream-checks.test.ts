/** The pure checks image-proxy applies to what an upstream sends: whole images, the key redacted in any case, failures named. */
import test from 'ava';
import { isWholeImage } from '../../functions/image-proxy/images';
import { fetchFailure, redactor } from '../../functions/image-proxy/pixabay';
import { sunsetPng } from '../../scripts/png';

const bytes = (...parts: (string | number[] | Buffer)[]) => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : Buffer.from(part))));

test('a whole PNG, JPEG, GIF or WebP passes; the same cut short, or anything else, does not', (t) => {
  const png = sunsetPng(15, 10, 7);
  const jpeg = bytes([0xff, 0xd8, 0xff, 0xe0, 0, 16], 'JFIF\0 scan data', [0xff, 0xd9]);
  const gif = bytes('GIF89a', [1, 0, 1, 0, 0, 0, 0, 0x2c], 'pixels', [0x3b]);
  const webpBody = bytes('WEBPVP8 ', [4, 0, 0, 0], 'data');
  const webp = bytes('RIFF', [webpBody.length, 0, 0, 0], webpBody);
  for (const [name, image] of Object.entries({ png, jpeg, gif, webp })) {
    t.true(isWholeImage(image), name);
    t.false(isWholeImage(image.subarray(0, image.length - 1)), `${name} less its last byte`);
    t.false(isWholeImage(image.subarray(0, image.length >> 1)), `${name} cut in half`);
  }
  t.true(isWholeImage(Buffer.concat([jpeg, Buffer.alloc(16)])), 'a JPEG padded with zero bytes after its end marker');
  t.false(isWholeImage(Buffer.concat([png, Buffer.from('<script>')])), 'a PNG with something after its end');
  for (const other of ['', '<html><body>Sign in</body></html>', '<svg xmlns="http://www.w3.org/2000/svg"/>', 'BM\0\0']) {
    t.false(isWholeImage(Buffer.from(other)), JSON.stringify(other));
  }
});

test('the redactor hides the key however an upstream echoes it: percent-escapes in either case, hosts lower-cased', (t) => {
  const key = 'Ab+c/9=';
  const redact = redactor(key);
  t.is(redact(`a ${key} b ${encodeURIComponent(key)} c ${encodeURIComponent(key).toLowerCase()}`), 'a REDACTED b REDACTED c REDACTED');
  t.is(redact(`not allowed (${key.toLowerCase()}.example)`), 'not allowed (REDACTED.example)');
  t.is(redactor('a.c')('abc a.c'), 'abc REDACTED', 'the key is matched literally, not as a pattern');
});

test('a failed fetch is named for what went wrong: late, not HTTP, broken off, or unreachable', (t) => {
  const failure = (error: Error) => {
    const { status, message } = fetchFailure(error, 'Pixabay', 'GET x');
    return `${status} ${message}`;
  };
  const withCause = (message: string, code: string) => Object.assign(new TypeError(message), { cause: { code } });
  t.is(failure(new DOMException('signal timed out', 'TimeoutError')), '504 Pixabay did not answer within 5000 ms');
  t.is(failure(withCause('fetch failed', 'HPE_UNEXPECTED_CONTENT_LENGTH')), '503 Pixabay answered something that is not valid HTTP (HPE_UNEXPECTED_CONTENT_LENGTH)');
  t.is(failure(withCause('terminated', 'UND_ERR_SOCKET')), '503 Pixabay broke off its answer (UND_ERR_SOCKET)');
  t.is(failure(withCause('fetch failed', 'ECONNREFUSED')), '503 Pixabay is unreachable (ECONNREFUSED)');
});

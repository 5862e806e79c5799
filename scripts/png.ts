/** Real PNG files made at run time (node:zlib only), so a browser decodes what the stand-in Pixabay serves. */
import { crc32, deflateSync } from 'node:zlib';

export type Rgb = [number, number, number];

/** An 8-bit RGB PNG of `width` x `height` whose pixel at (x, y) is `colourAt(x, y)`. */
export function makePng(width: number, height: number, colourAt: (x: number, y: number) => Rgb): Buffer {
  const rowBytes = 1 + width * 3;
  const pixels = Buffer.alloc(rowBytes * height);
  for (let y = 0; y < height; y++) {
    pixels[y * rowBytes] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const colour = colourAt(x, y);
      const at = y * rowBytes + 1 + x * 3;
      pixels[at] = colour[0];
      pixels[at + 1] = colour[1];
      pixels[at + 2] = colour[2];
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits per channel, truecolour, deflate, no filter set, no interlace
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(pixels)), chunk('IEND', Buffer.alloc(0))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

/** A sunset over hills, its colours drawn from `seed`: distinct images that look like something. */
export function sunsetPng(width: number, height: number, seed: number): Buffer {
  const top = hsl((200 + seed * 37) % 360, 0.55, 0.3);
  const bottom = hsl((seed * 23) % 50, 0.85, 0.62);
  const sun = { x: width * (0.2 + ((seed * 13) % 60) / 100), y: height * 0.62, r: height * 0.12 };
  const hillTop = Array.from({ length: width }, (_, x) => height * (0.72 + 0.06 * Math.sin((x / width) * Math.PI * (2 + (seed % 3)) + seed)));
  const sky = Array.from({ length: height }, (_, y) => [0, 1, 2].map((i) => Math.round(top[i]! + (bottom[i]! - top[i]!) * (y / height))) as Rgb);
  return makePng(width, height, (x, y) => {
    if (y > hillTop[x]!) return HILLS;
    if ((x - sun.x) ** 2 + (y - sun.y) ** 2 < sun.r ** 2) return SUN;
    return sky[y]!;
  });
}

const HILLS: Rgb = [25, 20, 35];
const SUN: Rgb = [255, 236, 170];

function hsl(hue: number, saturation: number, lightness: number): Rgb {
  const a = saturation * Math.min(lightness, 1 - lightness);
  const f = (n: number) => {
    const k = (n + hue / 30) % 12;
    return Math.round(255 * (lightness - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

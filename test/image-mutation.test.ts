// Damaged images, like test/mutation.test.ts does for model files: every PNG and JPEG kind the
// decoders handle (RGB, RGBA, grayscale, 16-bit, palette PNG; baseline colour, grayscale,
// progressive and Adobe CMYK JPEG) is truncated at every length, has one bit flipped in every byte,
// has seeded runs of bytes zeroed, and has its header patched to declare huge or empty sizes. Every
// outcome must be either
//   - an image whose pixel array matches its size, with every value a number in 0..255, or
//   - one Error whose message starts with the file name and is not a JavaScript crash surfacing
//     from inside a decoder ("Cannot read properties of undefined", "Invalid typed array length").
// A truncated file must never decode (jpeg-js would fill the missing scan with grey). A hang shows
// as this test timing out; a huge declared size must be refused from the header, before any decoder
// allocates for it (an out-of-memory kill would end the test process).
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { decodeImage } from '../src/image/decode.ts';
import { DEFAULT_MAX_PIXELS, maxImagePixels } from '../src/image/header.ts';
import { rng } from './helpers.ts';
import { chunk, cmykJpeg, grayJpeg, handPng, pngjsEncode, progressiveJpeg } from './image-files.ts';

const CRASH = /Cannot read propert|is not a function|is not iterable|Maximum call stack|Invalid (typed )?array length|of undefined|of null|Array buffer allocation failed|\(undefined\)|\[object Object\]/;

function noise(n: number, seed: number, max = 255): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * (max + 1)));
}

/** A smooth colour image with some detail, RGBA, so that JPEG blocks carry AC coefficients. */
function smoothRgba(w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 4 * (y * w + x);
      out.set([(x * 255) / w, (y * 255) / h, 128 + 100 * Math.sin(x / 3 + y / 5), 255], i);
    }
  }
  return out;
}

const W = 13;
const H = 11;
const palette = chunk('PLTE', Uint8Array.from([255, 0, 0, 0, 128, 255, 12, 34, 56, 250, 240, 230]));
const paletteAlpha = chunk('tRNS', Uint8Array.from([0, 128]));

/** The undamaged files: name (with the extension the error messages show) and bytes. */
const ORIGINALS: [string, Uint8Array][] = ([
  ['rgb8.png', pngjsEncode(W, H, 2, 8, Uint8Array.from(noise(W * H * 3, 1)))],
  ['rgba8.png', pngjsEncode(W, H, 6, 8, Uint8Array.from(noise(W * H * 4, 2)))],
  ['gray8.png', pngjsEncode(W, H, 0, 8, Uint8Array.from(noise(W * H, 3)))],
  ['gray16.png', pngjsEncode(W, H, 0, 16, Uint16Array.from(noise(W * H, 4, 65535)))],
  ['rgb16.png', pngjsEncode(W, H, 2, 16, Uint16Array.from(noise(W * H * 3, 5, 65535)))],
  ['palette8.png', handPng({ width: W, height: H, colorType: 3, depth: 8, channels: 1, samples: noise(W * H, 6, 3), extra: [palette, paletteAlpha] })],
  ['palette4.png', handPng({ width: W, height: H, colorType: 3, depth: 4, channels: 1, samples: noise(W * H, 7, 3), extra: [palette] })],
  ['baseline420.jpg', Uint8Array.from(jpeg.encode({ width: 24, height: 17, data: smoothRgba(24, 17) }, 80).data)],
  ['gray.jpg', grayJpeg()],
  ['progressive.jpg', progressiveJpeg()],
  ['cmyk.jpg', cmykJpeg()],
] as [string, Uint8Array][]).map(([name, bytes]) => [name, Uint8Array.from(bytes)]); // copies: Buffer.slice() would alias

type Outcome = 'image' | 'error';

/** Decodes and checks that the outcome is one of the two allowed; returns which. */
function outcome(bytes: Uint8Array, name: string, what: string): Outcome {
  let img;
  try {
    img = decodeImage(bytes, name);
  } catch (e) {
    expect(e, `${what}: threw a non-Error`).toBeInstanceOf(Error);
    const msg = (e as Error).message;
    expect(msg.startsWith(`${name}: `), `${what}: the error does not name the file: ${msg}`).toBe(true);
    expect(msg, `${what}: a crash, not a clean error`).not.toMatch(CRASH);
    return 'error';
  }
  expect(img.data.length, `${what}: pixel array of ${img.width}x${img.height}`).toBe(img.width * img.height * 3);
  let bad = -1;
  for (let i = 0; i < img.data.length && bad < 0; i++) if (!(img.data[i] >= 0 && img.data[i] <= 255)) bad = i;
  expect(bad, `${what}: value ${img.data[bad]} at ${bad}`).toBe(-1);
  return 'image';
}

/** The byte offsets of the header fields that hold the size: [width, height, bytes per field]. */
function sizeFields(bytes: Uint8Array, name: string): { width: number; height: number; size: 2 | 4 } {
  if (name.endsWith('.png')) return { width: 16, height: 20, size: 4 };
  for (let i = 2; i + 1 < bytes.length; i++) {
    if (bytes[i] === 0xff && (bytes[i + 1] === 0xc0 || bytes[i + 1] === 0xc2)) return { height: i + 5, width: i + 7, size: 2 };
  }
  throw new Error(`${name}: no SOF`);
}

function withSize(bytes: Uint8Array, name: string, width: number, height: number): Uint8Array {
  const f = sizeFields(bytes, name);
  const out = bytes.slice();
  const put = (at: number, v: number) => {
    for (let k = 0; k < f.size; k++) out[at + k] = (v >>> (8 * (f.size - 1 - k))) & 255;
  };
  put(f.width, width);
  put(f.height, height);
  // PNG: the IHDR CRC must match, or pngjs refuses the file before the size matters.
  if (f.size === 4) Buffer.from(out.buffer, out.byteOffset).writeUInt32BE(crcOf(out.subarray(12, 29)), 29);
  return out;
}

function crcOf(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('damaged images: every outcome is an image or one clean error naming the file', () => {
  it.each(ORIGINALS)('%s: the original decodes', (name, bytes) => {
    expect(outcome(bytes, name, `${name} original`)).toBe('image');
  });

  it.each(ORIGINALS)('%s: truncated at every length never decodes', (name, bytes) => {
    for (let n = 0; n < bytes.length; n++) expect(outcome(bytes.subarray(0, n), name, `${name} cut at ${n}`), `${name} cut at ${n}`).toBe('error');
  });

  it.each(ORIGINALS)('%s: one bit flipped in every byte', (name, bytes) => {
    const r = rng(name.length * 7919);
    for (let at = 0; at < bytes.length; at++) {
      const b = bytes.slice();
      const bit = Math.floor(r() * 8);
      b[at] ^= 1 << bit;
      outcome(b, name, `${name} bit ${bit} of byte ${at} flipped`);
    }
  });

  it.each(ORIGINALS)('%s: runs of zeroed bytes', (name, bytes) => {
    const r = rng(name.length * 104729);
    for (let k = 0; k < 60; k++) {
      const at = Math.floor(r() * bytes.length);
      const len = 1 + Math.floor(r() * 32);
      const b = bytes.slice();
      b.fill(0, at, at + len);
      outcome(b, name, `${name} zeroed ${len} bytes at ${at}`);
    }
  });

  it.each(ORIGINALS)('%s: huge or empty declared sizes are refused from the header', (name, bytes) => {
    const max = name.endsWith('.png') ? 2 ** 31 - 1 : 65535;
    for (const [w, h] of [[max, max], [65535, 65535], [2048, max], [max, 2048], [9000, 9000]]) {
      const b = withSize(bytes, name, w, h);
      expect(() => decodeImage(b, name), `${name} declared ${w}x${h}`).toThrow(new RegExp(`^${name.replace('.', '\\.')}: (PNG|JPEG) image of ${w}x${h} = \\d+ pixels is past the limit of ${DEFAULT_MAX_PIXELS}`));
    }
    for (const [w, h] of [[0, 8], [8, 0], [0, 0]]) {
      expect(() => decodeImage(withSize(bytes, name, w, h), name), `${name} declared ${w}x${h}`).toThrow(new RegExp(`^${name.replace('.', '\\.')}: (PNG|JPEG) image has no pixels \\(${w}x${h}\\)`));
    }
    // Declared sizes within the limit but not what the data holds: an image or a clean error.
    for (const [w, h] of [[1, 1], [W + 1, H], [64, 64], [1, 4096]]) outcome(withSize(bytes, name, w, h), name, `${name} declared ${w}x${h}`);
  });
});

describe('the pixel limit', () => {
  const png = ORIGINALS[0][1];
  it('is checked from the header and can be raised per call or with INCEPT_MAX_IMAGE_PIXELS', () => {
    expect(() => decodeImage(png, 'a.png', { maxPixels: W * H - 1 })).toThrow(`a.png: PNG image of 13x11 = 143 pixels is past the limit of 142 (raise it with the maxPixels decode option or INCEPT_MAX_IMAGE_PIXELS)`);
    expect(decodeImage(png, 'a.png', { maxPixels: W * H }).width).toBe(W);
    expect(maxImagePixels(undefined, {})).toBe(DEFAULT_MAX_PIXELS);
    expect(maxImagePixels(undefined, { INCEPT_MAX_IMAGE_PIXELS: '200000000' })).toBe(200_000_000);
    expect(maxImagePixels(5, { INCEPT_MAX_IMAGE_PIXELS: '200000000' })).toBe(5);
    expect(() => maxImagePixels(undefined, { INCEPT_MAX_IMAGE_PIXELS: 'lots' })).toThrow(/INCEPT_MAX_IMAGE_PIXELS must be a positive integer, got 'lots'/);
  });
});

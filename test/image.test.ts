// Image decoding (PNG via pngjs; JPEG as TF decodes it, jpeg-js as the fallback) and preprocessing
// (TF-Slim's eval; TF retrain.py's mean/std convention; the metadata spec).
// PNGs are generated here: with pngjs's encoder (RGB, RGBA, gray, gray+alpha, 16-bit) and with a
// small hand-written PNG writer below for what pngjs cannot write (palette, tRNS, 1/2/4-bit gray).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { decodeImage, detectFormat, readImage } from '../src/image/decode.ts';
import { decodeJpegIfast } from '../src/image/jpeg.ts';
import {
  centralCropWindow,
  inceptionEvalPreprocessing,
  legacyBilinearTaps,
  preprocessBatch,
  preprocessForEval,
  preprocessImage,
  preprocessMeanStd,
  preprocessingWith,
  retrainPreprocessing,
} from '../src/image/preprocess.ts';
import { SHARED_DIR, expectClose, fixturesPresent, rng, sharedMissingMessage } from './helpers.ts';
import { chunk, handPng, pngjsEncode } from './image-files.ts';

function randomBytes(n: number, seed: number, max = 255): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * (max + 1)));
}

const rgbOf = (samples: ArrayLike<number>, channels: number, pick: (px: number[]) => number[]) => {
  const out: number[] = [];
  for (let i = 0; i < samples.length; i += channels) out.push(...pick(Array.from({ length: channels }, (_, c) => samples[i + c])));
  return out;
};

// ---- decoding -------------------------------------------------------------------------------

describe('decodeImage: PNG', () => {
  const W = 7;
  const H = 5;

  it('8-bit RGB', () => {
    const s = randomBytes(W * H * 3, 1);
    const img = decodeImage(pngjsEncode(W, H, 2, 8, Uint8Array.from(s)), 'rgb.png');
    expect([img.width, img.height]).toEqual([W, H]);
    expect(Array.from(img.data)).toEqual(s);
  });

  it('8-bit RGBA: alpha is dropped, transparent pixels keep their colour', () => {
    const s = randomBytes(W * H * 4, 2);
    s[3] = 0; // fully transparent first pixel
    const img = decodeImage(pngjsEncode(W, H, 6, 8, Uint8Array.from(s)), 'rgba.png');
    expect(Array.from(img.data)).toEqual(rgbOf(s, 4, ([r, g, b]) => [r, g, b]));
  });

  it('8-bit grayscale and grayscale + alpha: R = G = B', () => {
    const g = randomBytes(W * H, 3);
    expect(Array.from(decodeImage(pngjsEncode(W, H, 0, 8, Uint8Array.from(g)), 'gray.png').data)).toEqual(rgbOf(g, 1, ([v]) => [v, v, v]));
    const ga = randomBytes(W * H * 2, 4);
    const img = decodeImage(pngjsEncode(W, H, 4, 8, Uint8Array.from(ga)), 'graya.png');
    expect(Array.from(img.data)).toEqual(rgbOf(ga, 2, ([v]) => [v, v, v]));
  });

  it('16-bit RGB and RGBA keep their precision (v * 255 / 65535)', () => {
    const s = randomBytes(W * H * 3, 5, 65535);
    s[0] = 65535;
    s[1] = 0;
    s[2] = 1;
    const img = decodeImage(pngjsEncode(W, H, 2, 16, Uint16Array.from(s)), 'rgb16.png');
    expectClose(img.data, s.map((v) => (v * 255) / 65535), { rtol: 1e-6, atol: 1e-6 }, 'rgb16');
    expect(img.data[0]).toBe(255);
    const a = randomBytes(W * H * 4, 6, 65535);
    const imgA = decodeImage(pngjsEncode(W, H, 6, 16, Uint16Array.from(a)), 'rgba16.png');
    expectClose(imgA.data, rgbOf(a, 4, ([r, g, b]) => [r, g, b]).map((v) => (v * 255) / 65535), { rtol: 1e-6, atol: 1e-6 }, 'rgba16');
  });

  it('16-bit grayscale (hand-written file)', () => {
    const g = randomBytes(W * H, 7, 65535);
    const img = decodeImage(handPng({ width: W, height: H, colorType: 0, depth: 16, channels: 1, samples: g }), 'gray16.png');
    expectClose(img.data, rgbOf(g, 1, ([v]) => [v, v, v]).map((v) => (v * 255) / 65535), { rtol: 1e-6, atol: 1e-6 }, 'gray16');
  });

  it('1-, 2- and 4-bit grayscale scale to 0..255', () => {
    for (const depth of [1, 2, 4]) {
      const max = 2 ** depth - 1;
      const g = randomBytes(W * H, 8 + depth, max);
      const img = decodeImage(handPng({ width: W, height: H, colorType: 0, depth, channels: 1, samples: g }), `gray${depth}.png`);
      expectClose(img.data, rgbOf(g, 1, ([v]) => [v, v, v]).map((v) => (v * 255) / max), { rtol: 1e-6, atol: 1e-5 }, `gray${depth}`);
    }
  });

  it('palette (8- and 4-bit), with tRNS alpha dropped', () => {
    const palette = [
      [255, 0, 0],
      [0, 128, 255],
      [12, 34, 56],
      [250, 240, 230],
    ];
    const plte = chunk('PLTE', Uint8Array.from(palette.flat()));
    const trns = chunk('tRNS', Uint8Array.from([0, 128])); // entry 0 transparent, 1 half
    for (const depth of [8, 4]) {
      const idx = randomBytes(W * H, 20 + depth, 3);
      const file = handPng({ width: W, height: H, colorType: 3, depth, channels: 1, samples: idx, extra: [plte, trns] });
      const img = decodeImage(file, `palette${depth}.png`);
      expect(Array.from(img.data), `palette depth ${depth}`).toEqual(idx.flatMap((i) => palette[i]));
    }
  });

  it('tRNS colour key (RGB and gray): the keyed colour is kept, not blacked out', () => {
    const s = randomBytes(W * H * 3, 30);
    s.splice(0, 3, 9, 8, 7);
    s.splice(6, 3, 9, 8, 7);
    const key = chunk('tRNS', Uint8Array.from([0, 9, 0, 8, 0, 7]));
    const img = decodeImage(handPng({ width: W, height: H, colorType: 2, depth: 8, channels: 3, samples: s, extra: [key] }), 'key.png');
    expect(Array.from(img.data)).toEqual(s);
    const g = randomBytes(W * H, 31);
    g[4] = 77;
    const gkey = chunk('tRNS', Uint8Array.from([0, 77]));
    const gi = decodeImage(handPng({ width: W, height: H, colorType: 0, depth: 8, channels: 1, samples: g, extra: [gkey] }), 'gkey.png');
    expect(Array.from(gi.data)).toEqual(rgbOf(g, 1, ([v]) => [v, v, v]));
  });
});

describe('decodeImage: JPEG', () => {
  it('decodes a jpeg-js encoded image close to its source (quality 100)', () => {
    const W = 24;
    const H = 16;
    const rgba = new Uint8Array(W * H * 4);
    // Flat 8x8 blocks of one colour each: JPEG reproduces them almost exactly.
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const b = (y >> 3) * 3 + (x >> 3);
        rgba.set([40 + 30 * b, 200 - 20 * b, 100 + (b % 2) * 50, 255], (y * W + x) * 4);
      }
    }
    const file = jpeg.encode({ width: W, height: H, data: rgba }, 100).data;
    const img = decodeImage(file, 'blocks.jpg');
    expect([img.width, img.height]).toEqual([W, H]);
    expectClose(img.data, rgbOf(rgba, 4, ([r, g, b]) => [r, g, b]), { rtol: 0, atol: 4 }, 'jpeg pixels');
  });

  it('detects the format by magic bytes, not the extension', () => {
    const png = pngjsEncode(2, 2, 2, 8, new Uint8Array(12).fill(50));
    expect(detectFormat(png, 'photo.jpg')).toBe('png');
    expect(decodeImage(png, 'photo.jpg').data[0]).toBe(50);
    const jpg = jpeg.encode({ width: 8, height: 8, data: new Uint8Array(256).fill(200) }, 90).data;
    expect(detectFormat(jpg, 'image.png')).toBe('jpeg');
  });
});

describe('decodeImage: JPEGs decoded as TensorFlow decodes them', () => {
  const smooth = (w: number, h: number) => {
    const px = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) px.set([128 + 100 * Math.sin(x / 3), 128 + 90 * Math.cos(y / 4), (x * 7 + y * 3) % 256, 255], (y * w + x) * 4);
    return px;
  };

  it('baseline files: bit for bit the IFAST decoder (libjpeg JDCT_IFAST, as TF); jpeg-js on request', () => {
    const bytes = jpeg.encode({ width: 37, height: 29, data: smooth(37, 29) }, 85).data;
    const img = decodeImage(bytes, 'b.jpg');
    expect(Array.from(img.data)).toEqual(Array.from(decodeJpegIfast(bytes, 'b.jpg').data));
    const js = decodeImage(bytes, 'b.jpg', { jpeg: 'jpeg-js' });
    expect(Array.from(js.data)).toEqual(Array.from(jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false }).data));
    expect(Array.from(js.data)).not.toEqual(Array.from(img.data)); // the IDCTs differ
  });

  it('a progressive JPEG (refused by the IFAST decoder) falls back to jpeg-js', () => {
    // Hand-written 8x8 grayscale, progressive (SOF2) with one DC-only scan: quantiser 1, one
    // Huffman code '0' for category 10, then the DC value 576 = (200 - 128) * 8 -> flat 200.
    const b = Uint8Array.from([
      ...[0xff, 0xd8],
      ...[0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array(64).fill(1)],
      ...[0xff, 0xc2, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00],
      ...[0xff, 0xc4, 0x00, 0x14, 0x00, 1, ...new Array(15).fill(0), 0x0a],
      ...[0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00],
      ...[0x48, 0x1f, 0xff, 0xd9],
    ]);
    expect(() => decodeJpegIfast(b, 'p.jpg')).toThrow(/p\.jpg: progressive JPEG is not supported/);
    const img = decodeImage(b, 'p.jpg');
    expect([img.width, img.height]).toEqual([8, 8]);
    expect(Array.from(img.data)).toEqual(new Array(8 * 8 * 3).fill(200));
  });

  it('damage is no reason to fall back: the IFAST error, naming the file', () => {
    const bytes = Buffer.from(jpeg.encode({ width: 16, height: 16, data: smooth(16, 16) }, 85).data);
    const sos = bytes.indexOf(Buffer.from([0xff, 0xda]));
    bytes[sos + 6] = 0x33; // the first scan component's Huffman tables: 3 and 3, never defined
    expect(() => decodeImage(bytes, 'h.jpg')).toThrow(/^h\.jpg: corrupt or truncated JPEG file \(scan uses an undefined Huffman table\)$/);
  });
});

describe('decodeImage: bad files name the file and the problem', () => {
  const png = pngjsEncode(9, 9, 2, 8, Uint8Array.from(randomBytes(243, 40)));
  const jpg = jpeg.encode({ width: 32, height: 32, data: Uint8Array.from(randomBytes(32 * 32 * 4, 41)) }, 80).data;

  it.each([
    ['notes.txt', Buffer.from('just some text, not pixels'), /notes\.txt: not a PNG or JPEG image/],
    ['empty.png', Buffer.alloc(0), /empty\.png: empty file/],
    ['anim.gif', Buffer.from('GIF89a\x01\x00\x01\x00', 'latin1'), /anim\.gif: GIF images are not supported/],
    ['cut.png', png.subarray(0, png.length - 30), /cut\.png: corrupt or truncated PNG file \(the file ends early: truncated\)/],
    ['magic-only.png', png.subarray(0, 8), /magic-only\.png: corrupt or truncated PNG/],
    ['cut.jpg', jpg.subarray(0, Math.floor(jpg.length / 2)), /cut\.jpg: corrupt or truncated JPEG file \(.*truncated/],
    ['soi-only.jpg', jpg.subarray(0, 3), /soi-only\.jpg: corrupt or truncated JPEG/],
  ])('%s', (name, bytes, message) => {
    expect(() => decodeImage(bytes, name)).toThrow(message);
  });

  it('a PNG with a damaged pixel chunk (CRC mismatch)', () => {
    const bad = Buffer.from(png);
    const idat = bad.indexOf('IDAT');
    bad[idat + 6] ^= 0x55;
    expect(() => decodeImage(bad, 'crc.png')).toThrow(/crc\.png: corrupt or truncated PNG file/);
  });

  it('a JPEG with a damaged header', () => {
    const bad = Buffer.from(jpg);
    const sof = bad.indexOf(Buffer.from([0xff, 0xc0]));
    bad.fill(0x00, sof, sof + 12);
    expect(() => decodeImage(bad, 'header.jpg')).toThrow(/header\.jpg: corrupt or truncated JPEG file/);
  });

  it('readImage: a missing file and a directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-image-'));
    try {
      expect(() => readImage(join(dir, 'nope.png'))).toThrow(/nope\.png: cannot read \(no such file\)/);
      expect(() => readImage(dir)).toThrow(/cannot read \(is a directory\)/);
      writeFileSync(join(dir, 'ok.png'), png);
      expect(readImage(join(dir, 'ok.png')).width).toBe(9);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

const FIXTURES = join(SHARED_DIR, 'fixtures/tf-mobilenet/test');
describe.skipIf(!fixturesPresent([FIXTURES]))('decodeImage: real JPEGs from ../shared/fixtures/tf-mobilenet', () => {
  it('decodes a few test images (100x100 Fruits-360 photos)', () => {
    const classes = readdirSync(FIXTURES).sort().slice(0, 4);
    expect(classes.length, `${FIXTURES}: class folders`).toBe(4);
    for (const cls of classes) {
      const file = readdirSync(join(FIXTURES, cls)).find((f) => f.endsWith('.jpg'));
      expect(file, `${join(FIXTURES, cls)}: a .jpg`).toBeDefined();
      if (!file) return;
      const path = join(FIXTURES, cls, file);
      const img = decodeImage(readFileSync(path), path);
      expect([img.width, img.height], path).toEqual([100, 100]);
      expect(Array.from(img.data), `${path}: decoded as TF does`).toEqual(Array.from(decodeJpegIfast(readFileSync(path), path).data));
      expect(img.data.every((v) => v >= 0 && v <= 255)).toBe(true);
      expect(Math.max(...img.data) - Math.min(...img.data), `${path} is not flat`).toBeGreaterThan(50);
    }
  });
});
if (!existsSync(FIXTURES)) it.skip(sharedMissingMessage('decoding the TF MobileNet fixture JPEGs'), () => {});

// ---- preprocessing --------------------------------------------------------------------------

describe('preprocessForEval (TF-Slim inception preprocess_for_eval)', () => {
  it('central_crop windows follow tf.image.central_crop (int((s - s * 0.875) / 2), s - 2 * start)', () => {
    // Worked by hand: 100 -> (100 - 87.5) / 2 = 6.25 -> start 6, size 88; 299 -> 18.6875 -> 18, 263;
    // 8 -> 0.5 -> 0, 8; 17 -> 1.0625 -> 1, 15; 16 -> 1 -> 1, 14; 1 -> 0, 1.
    expect(centralCropWindow(100)).toEqual([6, 88]);
    expect(centralCropWindow(299)).toEqual([18, 263]);
    expect(centralCropWindow(8)).toEqual([0, 8]);
    expect(centralCropWindow(17)).toEqual([1, 15]);
    expect(centralCropWindow(16)).toEqual([1, 14]);
    expect(centralCropWindow(1)).toEqual([0, 1]);
    expect(() => centralCropWindow(10, 0)).toThrow(/fraction/);
  });

  it('legacy bilinear taps (align_corners=False, half_pixel_centers=False)', () => {
    // 2 -> 4: source = dst * 0.5 = 0, 0.5, 1, 1.5; the upper tap is clamped to the last row.
    const t = legacyBilinearTaps(2, 4);
    expect(Array.from(t.lo)).toEqual([0, 0, 1, 1]);
    expect(Array.from(t.hi)).toEqual([0, 1, 1, 1]);
    expect(Array.from(t.lerp)).toEqual([0, 0.5, 0, 0.5]);
    // 5 -> 2: source = 0, 2.5.
    const d = legacyBilinearTaps(5, 2);
    expect([Array.from(d.lo), Array.from(d.hi), Array.from(d.lerp)]).toEqual([[0, 2], [0, 3], [0, 0.5]]);
  });

  it('hand-computed 2x2 -> 4x4 upscale (no crop), scaled to [-1, 1]', () => {
    // Channel 0 is [[0, 255], [255, 0]]; channels 1 and 2 are constant 255 and 0.
    const px = [0, 255, 255, 0];
    const img = { width: 2, height: 2, data: Float32Array.from(px.flatMap((v) => [v, 255, 0])) };
    const out = preprocessForEval(img, 4, { centralFraction: 1 });
    // In [0,1]: rows y = 0, 0.5, 1, 1.5 (clamped like 1) blend [0,1] and [1,0].
    const expected01 = [
      [0, 0.5, 1, 1],
      [0.5, 0.5, 0.5, 0.5],
      [1, 0.5, 0, 0],
      [1, 0.5, 0, 0],
    ];
    const ch0 = Array.from({ length: 16 }, (_, i) => out[i * 3]);
    expectClose(ch0, expected01.flat().map((v) => (v - 0.5) * 2), { atol: 1e-6 }, 'channel 0');
    expect(Array.from({ length: 16 }, (_, i) => out[i * 3 + 1])).toEqual(new Array(16).fill(1));
    expect(Array.from({ length: 16 }, (_, i) => out[i * 3 + 2])).toEqual(new Array(16).fill(-1));
  });

  /**
   * Float64 reference written straight from the TF definitions; like TF's kernel it computes the
   * source coordinate in float32 (dst * float(in / out)), which moves it by up to ~1e-5 from the
   * exact rational for the larger sizes here.
   */
  function reference(w: number, h: number, data: Float32Array, outH: number, outW: number): Float64Array {
    const sy = Math.trunc((h - h * 0.875) / 2);
    const sx = Math.trunc((w - w * 0.875) / 2);
    const ch = h - 2 * sy;
    const cw = w - 2 * sx;
    const out = new Float64Array(outH * outW * 3);
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        const y = Math.fround(oy * Math.fround(ch / outH));
        const x = Math.fround(ox * Math.fround(cw / outW));
        const y0 = Math.floor(y);
        const x0 = Math.floor(x);
        const y1 = Math.min(Math.ceil(y), ch - 1);
        const x1 = Math.min(Math.ceil(x), cw - 1);
        for (let c = 0; c < 3; c++) {
          const v = (yy: number, xx: number) => data[((sy + yy) * w + (sx + xx)) * 3 + c] / 255;
          const top = v(y0, x0) * (1 - (x - x0)) + v(y0, x1) * (x - x0);
          const bot = v(y1, x0) * (1 - (x - x0)) + v(y1, x1) * (x - x0);
          out[(oy * outW + ox) * 3 + c] = (top * (1 - (y - y0)) + bot * (y - y0) - 0.5) * 2;
        }
      }
    }
    return out;
  }

  it.each([
    [16, 16, 5, 5], // crop 14x14 at (1,1), downscale
    [23, 17, 9, 11], // odd sizes, crop 21x15 at (1,1), mixed up/down
    [9, 40, 31, 7],
    [100, 100, 75, 75],
  ])('crop + resize %ix%i -> %ix%i matches the float64 reference', (w, h, outH, outW) => {
    const data = Float32Array.from(randomBytes(w * h * 3, w * 31 + h));
    const out = preprocessForEval({ width: w, height: h, data }, [outH, outW]);
    expect(out.length).toBe(outH * outW * 3);
    expectClose(out, reference(w, h, data, outH, outW), { rtol: 0, atol: 2e-6 }, `${w}x${h} -> ${outH}x${outW}`);
    expect(out.every((v) => v >= -1 && v <= 1)).toBe(true);
  });

  it('preprocessBatch stacks images NHWC; bad sizes are refused', () => {
    const a = { width: 12, height: 10, data: Float32Array.from(randomBytes(360, 50)) };
    const b = { width: 30, height: 8, data: Float32Array.from(randomBytes(720, 51)) };
    const batch = preprocessBatch([a, b], 6);
    expect(batch.length).toBe(2 * 6 * 6 * 3);
    expect(Array.from(batch.subarray(108))).toEqual(Array.from(preprocessForEval(b, 6)));
    expect(() => preprocessForEval(a, 0)).toThrow(/size/);
    expect(() => preprocessForEval({ width: 3, height: 3, data: new Float32Array(5) }, 4)).toThrow(/needs 27 values/);
  });
});

describe("TF retrain.py / label_image preprocessing: (resize(x) - mean) / std on 0..255 values", () => {
  it('hand-computed 2x2 -> 4x4 upscale, mean 127.5, std 127.5 (float32 as TF)', () => {
    const px = [0, 255, 255, 0];
    const img = { width: 2, height: 2, data: Float32Array.from(px.flatMap((v) => [v, 255, 0])) };
    const out = preprocessMeanStd(img, 4);
    const expected = [
      [0, 127.5, 255, 255],
      [127.5, 127.5, 127.5, 127.5],
      [255, 127.5, 0, 0],
      [255, 127.5, 0, 0],
    ];
    const inv = Math.fround(1 / 127.5);
    const ch0 = Array.from({ length: 16 }, (_, i) => out[i * 3]);
    expect(ch0).toEqual(expected.flat().map((v) => Math.fround(Math.fround(v - 127.5) * inv)));
    expect(Array.from({ length: 16 }, (_, i) => out[i * 3 + 1])).toEqual(new Array(16).fill(1));
    expect(Array.from({ length: 16 }, (_, i) => out[i * 3 + 2])).toEqual(new Array(16).fill(-1));
  });

  it('per-channel mean/std, central crop, and the Inception spec through preprocessImage', () => {
    const img = { width: 23, height: 17, data: Float32Array.from(randomBytes(23 * 17 * 3, 60)) };
    const mean = [123.675, 116.28, 103.53];
    const std = [58.395, 57.12, 57.375];
    const out = preprocessMeanStd(img, [9, 11], { mean, std, crop: 0.875 });
    // The same pixels cropped by hand (tf.image.central_crop: 21x15 at (1, 1)) then resized without a crop.
    const [y0, ch] = centralCropWindow(17);
    const [x0, cw] = centralCropWindow(23);
    const cropped = new Float32Array(ch * cw * 3);
    for (let y = 0; y < ch; y++) cropped.set(img.data.subarray(((y0 + y) * 23 + x0) * 3, ((y0 + y) * 23 + x0 + cw) * 3), y * cw * 3);
    const unit = preprocessMeanStd({ width: cw, height: ch, data: cropped }, [9, 11], { mean: 0, std: 1 });
    expectClose(out, unit.map((v, i) => (v - mean[i % 3]) / std[i % 3]), { rtol: 1e-6, atol: 1e-6 }, 'per channel');
    // kind 'inception' is TF-Slim's preprocess_for_eval; 'mean_std' 127.5/127.5 with the same crop agrees to rounding.
    const spec = inceptionEvalPreprocessing([9, 11]);
    expect(Array.from(preprocessImage(img, spec))).toEqual(Array.from(preprocessForEval(img, [9, 11])));
    const asMeanStd = preprocessingWith(spec, { mean: 127.5 });
    expect(asMeanStd.kind).toBe('mean_std');
    expectClose(preprocessImage(img, asMeanStd), preprocessForEval(img, [9, 11]), { rtol: 0, atol: 2e-6 }, 'inception vs mean/std');
    expect(Array.from(preprocessImage(img, retrainPreprocessing([9, 11])))).toEqual(Array.from(preprocessMeanStd(img, [9, 11])));
  });

  it('bad specs are refused, naming the field', () => {
    const spec = retrainPreprocessing([4, 4]);
    expect(() => preprocessingWith(spec, { crop: 0 })).toThrow(/crop fraction 0 must be in \(0, 1\]/);
    expect(() => preprocessingWith(spec, { std: [1, 0, 1] })).toThrow(/std must not be 0/);
    expect(() => preprocessingWith(spec, { mean: [1, 2] })).toThrow(/mean must be one number or three/);
    expect(() => preprocessingWith(spec, { size: [4, 0] })).toThrow(/size \[4,0\] must be \[height, width\]/);
    expect(() => preprocessMeanStd({ width: 3, height: 3, data: new Float32Array(5) }, 4)).toThrow(/needs 27 values/);
  });
});

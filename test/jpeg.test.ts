// The IFAST JPEG decoder (src/image/jpeg.ts). Its bit-level agreement with TensorFlow's decoding is
// checked end to end in mobilenet.test.ts (logits within 2e-4 of TF's on 60 images); here: the
// fast IDCT against the exact DCT-III, agreement with jpeg-js (an independent decoder with an
// accurate IDCT) on real and synthetic files, the 4:4:4 and restart-interval paths, and errors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { decodeImage } from '../src/image/decode.ts';
import { decodeJpegIfast, idctIfast, ifastMultipliers } from '../src/image/jpeg.ts';
import { SHARED_DIR, fixturesPresent, needsTitle, rng } from './helpers.ts';

/** The exact 8x8 inverse DCT (T.81 A.3.3) plus the level shift, clamped. */
function exactIdct(coef: ArrayLike<number>): Float64Array {
  const out = new Float64Array(64);
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let v = 0; v < 8; v++)
        for (let u = 0; u < 8; u++) {
          const cu = u ? 1 : Math.SQRT1_2;
          const cv = v ? 1 : Math.SQRT1_2;
          s += cu * cv * coef[v * 8 + u] * Math.cos(((2 * x + 1) * u * Math.PI) / 16) * Math.cos(((2 * y + 1) * v * Math.PI) / 16);
        }
      out[y * 8 + x] = Math.min(255, Math.max(0, s / 4 + 128));
    }
  return out;
}

function diffStats(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; mean: number } {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

describe('idctIfast', () => {
  it('a DC-only block gives the exact level (dequantised DC / 8 + 128)', () => {
    const out = new Uint8Array(64);
    const coef = new Int16Array(64);
    coef[0] = 5;
    const q = new Array(64).fill(16);
    idctIfast(coef, 0, ifastMultipliers(q), out, 0, 8, new Int32Array(64));
    expect([...new Set(out)]).toEqual([138]); // 5 * 16 / 8 + 128
  });

  it('the dequantisation multipliers are libjpeg-scaled AAN factors (2 fraction bits)', () => {
    const m = ifastMultipliers(new Array(64).fill(16));
    expect(m[0]).toBe(64); // 16 * 4
    expect(m[1]).toBe(Math.round((16 * Math.round(16384 * Math.SQRT2 * Math.cos(Math.PI / 16))) / 4096)); // 89
  });

  it('stays within the fast IDCT accuracy of the exact DCT-III on random blocks', () => {
    const r = rng(5);
    const out = new Uint8Array(64);
    const ws = new Int32Array(64);
    let worst = 0;
    let sum = 0;
    for (let t = 0; t < 300; t++) {
      const coef = new Int16Array(64);
      // Quantised with q = 8 (a quality-75-like step): the coefficients seen by the IDCT are coef * 8.
      for (let i = 0; i < 64; i++) coef[i] = Math.round((r() - 0.5) * (i === 0 ? 100 : 10 / (1 + i / 8)));
      idctIfast(coef, 0, ifastMultipliers(new Array(64).fill(8)), out, 0, 8, ws);
      const d = diffStats(out, exactIdct(coef.map((c) => c * 8)));
      worst = Math.max(worst, d.max);
      sum += d.mean;
    }
    expect(worst).toBeLessThan(4); // 8-bit constants and truncating shifts: a few levels at worst
    expect(sum / 300).toBeLessThan(1); // truncation biases low by ~0.5 on average
  });
});

describe('decodeJpegIfast', () => {
  function smoothImage(w: number, h: number, seed: number): Buffer {
    const r = rng(seed);
    const [a, b, c] = [r() * 0.2, r() * 0.2, r() * 6];
    const data = Buffer.alloc(w * h * 4);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 4;
        data[o] = 128 + 100 * Math.sin(a * x + c);
        data[o + 1] = 128 + 100 * Math.cos(b * y);
        data[o + 2] = (x * 7 + y * 3) % 256;
        data[o + 3] = 255;
      }
    return data;
  }

  it('decodes a 4:4:4 file (jpeg-js encoder, odd size) close to jpeg-js', () => {
    const [w, h] = [37, 21];
    const bytes = jpeg.encode({ data: smoothImage(w, h, 1), width: w, height: h }, 90).data;
    const img = decodeJpegIfast(bytes, 'synthetic.jpg');
    expect([img.width, img.height]).toEqual([w, h]);
    const d = diffStats(img.data, decodeImage(bytes, 'synthetic.jpg').data);
    expect(d.mean).toBeLessThan(1);
    expect(d.max).toBeLessThanOrEqual(4);
  });

  it('refuses progressive, truncated and non-JPEG files with the file name', () => {
    const bytes = Uint8Array.from(jpeg.encode({ data: smoothImage(16, 16, 2), width: 16, height: 16 }, 80).data);
    const sof = bytes.findIndex((b, i) => b === 0xff && bytes[i + 1] === 0xc0);
    const progressive = bytes.slice();
    progressive[sof + 1] = 0xc2;
    expect(() => decodeJpegIfast(progressive, 'p.jpg')).toThrow(/p\.jpg: progressive JPEG is not supported/);
    expect(() => decodeJpegIfast(bytes.subarray(0, sof + 30), 't.jpg')).toThrow(/t\.jpg: truncated/);
    expect(() => decodeJpegIfast(new Uint8Array([0x89, 0x50, 0x4e, 0x47]), 'x.png')).toThrow(/x\.png: not a JPEG/);
  });

  const DIR = join(SHARED_DIR, 'fixtures/tf-mobilenet');
  it.skipIf(!fixturesPresent([DIR]))(needsTitle('decodes the 4:2:0 fixture JPEGs (one with restart markers) close to jpeg-js', [DIR]), () => {
    for (const f of ['train/Lemon/0_100.jpg', 'train/Orange/r_13_100.jpg', 'test/Lemon/3_100.jpg' /* DRI 7 */]) {
      const bytes = readFileSync(join(DIR, f));
      const img = decodeJpegIfast(bytes, f);
      expect([img.width, img.height]).toEqual([100, 100]);
      // jpeg-js upsamples chroma by replication, so edges of colour differ; on average they agree.
      const d = diffStats(img.data, decodeImage(bytes, f).data);
      expect(d.mean, f).toBeLessThan(3);
    }
  });
});

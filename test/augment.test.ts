// Train augmentation: determinism, ranges, TF's distorted-crop bounds, exact flips and rotations,
// and the colour ops against values computed by hand.
import { describe, expect, test } from 'vitest';
import type { DecodedImage } from '../src/image/decode.ts';
import { preprocessForEval } from '../src/image/preprocess.ts';
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  type AugmentRecord,
  augmentForTrain,
  COLOR_ORDERINGS,
  distortColor,
  ESTEVA_AUGMENT,
  flipLeftRight,
  flipUpDown,
  hsvToRgb,
  largestInscribedRect,
  resizeBilinear,
  rgbToHsv,
  rot90,
  rotate,
  sampleDistortedBoundingBox,
} from '../src/train/augment.ts';
import { Rng } from '../src/train/rng.ts';
import { expectClose, rng as testRng } from './helpers.ts';

/** A random RGB image with 0..255 integer values. */
function image(width: number, height: number, seed: number): DecodedImage {
  const r = testRng(seed);
  const data = new Float32Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
  return { width, height, data };
}

const px = (d: Float32Array, w: number, y: number, x: number) => [...d.subarray((y * w + x) * 3, (y * w + x) * 3 + 3)];

describe('rng', () => {
  test('seeded, restorable from its JSON state, unbiased ints in range', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
    const saved = JSON.parse(JSON.stringify(a.state()));
    const x = [a.float(), a.int(7), a.normal()];
    const c = Rng.fromState(saved);
    expect([c.float(), c.int(7), c.normal()]).toEqual(x);
    expect(new Rng(43).next()).not.toBe(new Rng(42).next());
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 5000; i++) counts[a.int(5)]++;
    for (const n of counts) expect(Math.abs(n - 1000)).toBeLessThan(150);
    expect(() => new Rng([0, 0, 0, 0])).toThrow('invalid state');
  });
});

describe('determinism and range', () => {
  const img = image(37, 29, 1);
  const variants = { default: {}, fast: { color: 'fast' as const }, quarter: { rotate: 'quarter' as const }, esteva: ESTEVA_AUGMENT, reflect: { rotate: 'any' as const } };
  for (const [name, opts] of Object.entries(variants)) {
    test(`${name}: same seed, same bytes; other seeds differ; values in [-1, 1]`, () => {
      const a = augmentForTrain(img, [13, 11], 5, opts);
      const b = augmentForTrain(img, [13, 11], 5, opts);
      expect(a.length).toBe(13 * 11 * 3);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      expect(augmentForTrain(img, [13, 11], new Rng(5), opts)).toEqual(a); // a seed or a generator seeded with it
      const c = augmentForTrain(img, [13, 11], 6, opts);
      expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
      for (const out of [a, c]) for (const v of out) expect(v >= -1 && v <= 1).toBe(true);
    });
  }

  test('bad input is refused with a clear message', () => {
    expect(() => augmentForTrain(img, 0, 1)).toThrow('output size 0x0');
    expect(() => augmentForTrain({ width: 3, height: 3, data: new Float32Array(5) }, 4, 1)).toThrow('needs 27 values, got 5');
    expect(() => augmentForTrain(img, 4, 1, { rotate: 'sideways' as 'any' })).toThrow("unknown rotate option 'sideways'");
  });
});

describe('sample_distorted_bounding_box', () => {
  test('crops stay inside the image and respect the area and aspect bounds', () => {
    const rng = new Rng(3);
    let fallbacks = 0;
    for (let i = 0; i < 3000; i++) {
      const H = 8 + rng.int(400);
      const W = 8 + rng.int(400);
      const c = sampleDistortedBoundingBox(H, W, rng);
      expect(c.y >= 0 && c.x >= 0 && c.y + c.height <= H && c.x + c.width <= W).toBe(true);
      if (c.fallback) {
        // Only very elongated images have no 0.75..1.33 crop covering 10% of them.
        expect(Math.max(W, H) / Math.min(W, H)).toBeGreaterThan(3);
        expect(c).toEqual({ y: 0, x: 0, height: H, width: W, fallback: true });
        fallbacks++;
        continue;
      }
      // min_object_covered 0.1 of the whole-image box is the binding lower bound on the area.
      const area = (c.width * c.height) / (W * H);
      expect(area).toBeGreaterThanOrEqual(0.1);
      expect(area).toBeLessThanOrEqual(1);
      // width = round(height * aspect): the ratio is off the range by at most half a pixel.
      const aspect = c.width / c.height;
      expect(aspect).toBeGreaterThanOrEqual(0.75 - 0.5 / c.height);
      expect(aspect).toBeLessThanOrEqual(1.33 + 0.5 / c.height);
      // TF draws offsets from [0, size - crop): a smaller crop never reaches the last row.
      if (c.height < H) expect(c.y + c.height).toBeLessThan(H);
    }
    expect(fallbacks).toBeGreaterThan(0);
  });

  test('custom ranges, object boxes, and the fallback to the whole image', () => {
    const rng = new Rng(9);
    for (let i = 0; i < 300; i++) {
      const c = sampleDistortedBoundingBox(120, 160, rng, { areaRange: [0.3, 0.5], aspectRatioRange: [1, 1], minObjectCovered: 0 });
      expect(c.fallback).toBe(false);
      expect((c.width * c.height) / (120 * 160)).toBeGreaterThanOrEqual(0.3);
      expect((c.width * c.height) / (120 * 160)).toBeLessThanOrEqual(0.5);
      expect(c.width).toBe(c.height);
    }
    // A small object box: every crop covers at least 90% of it.
    for (let i = 0; i < 300; i++) {
      const c = sampleDistortedBoundingBox(100, 100, rng, { boxes: [[0.1, 0.6, 0.3, 0.9]], minObjectCovered: 0.9 });
      if (c.fallback) continue;
      const ix = Math.max(0, Math.min(c.x + c.width, 90) - Math.max(c.x, 60));
      const iy = Math.max(0, Math.min(c.y + c.height, 30) - Math.max(c.y, 10));
      expect((ix * iy) / (30 * 20)).toBeGreaterThanOrEqual(0.9);
    }
    // Impossible: a 3:1 crop of at least 90% of a square.
    expect(sampleDistortedBoundingBox(50, 50, rng, { areaRange: [0.9, 1], aspectRatioRange: [3, 4] })).toEqual({ y: 0, x: 0, height: 50, width: 50, fallback: true });
    expect(() => sampleDistortedBoundingBox(50, 50, rng, { areaRange: [0.5, 0.2] })).toThrow('area_range');
  });
});

describe('geometry', () => {
  test('without rotation, flips or colour, the output is the crop resized like the eval path', () => {
    const img = image(41, 33, 2);
    const rec: Partial<AugmentRecord> = {};
    const out = augmentForTrain(img, [19, 23], 11, { flipLeftRight: 0, color: 'none' }, rec);
    const { crop } = rec as AugmentRecord;
    const expected = resizeBilinear(img, 19, 23, crop, 1 / 255).map((v) => (v - 0.5) * 2);
    expectClose(out, expected, { rtol: 0, atol: 1e-6 }, 'augment without distortions');
    // resizeBilinear of the whole image is preprocess.ts's TF1 legacy bilinear.
    const whole = resizeBilinear(img, 19, 23, undefined, 1 / 255).map((v) => (v - 0.5) * 2);
    expectClose(whole, preprocessForEval(img, [19, 23], { centralFraction: 1 }), { rtol: 0, atol: 1e-6 }, 'resize vs eval');
  });

  test('flips are exact mirrors and their own inverses', () => {
    const { data } = image(5, 4, 3);
    const lr = flipLeftRight(data.slice(), 4, 5);
    const ud = flipUpDown(data.slice(), 4, 5);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 5; x++) {
        expect(px(lr, 5, y, x)).toEqual(px(data, 5, y, 4 - x));
        expect(px(ud, 5, y, x)).toEqual(px(data, 5, 3 - y, x));
      }
    }
    expect(flipLeftRight(lr, 4, 5)).toEqual(data);
    expect(flipUpDown(ud, 4, 5)).toEqual(data);
    // In the pipeline: the same seed with the flip forced on and off gives exact mirrors.
    const img = image(30, 20, 4);
    const off = augmentForTrain(img, 9, 21, { flipLeftRight: 0, color: 'none' });
    const on = augmentForTrain(img, 9, 21, { flipLeftRight: 1, color: 'none' });
    expect(flipLeftRight(on, 9, 9)).toEqual(off);
    const up = augmentForTrain(img, 9, 21, { flipLeftRight: 0, flipUpDown: 1, color: 'none' });
    expect(flipUpDown(up, 9, 9)).toEqual(off);
  });

  test('rot90 is exact, counter-clockwise, and rotate(90) agrees with it', () => {
    const img = image(5, 3, 5);
    const r1 = rot90(img, 1);
    expect([r1.width, r1.height]).toEqual([3, 5]);
    // Counter-clockwise: the top-right pixel goes to the top-left.
    expect(px(r1.data, 3, 0, 0)).toEqual(px(img.data, 5, 0, 4));
    expect(px(r1.data, 3, 4, 0)).toEqual(px(img.data, 5, 0, 0));
    let r = img;
    for (let k = 0; k < 4; k++) r = rot90(r, 1);
    expect(r).toEqual(img);
    expect(rot90(img, 3)).toEqual(rot90(rot90(img, 2), 1));
    const sq = image(7, 7, 6);
    expectClose(rotate(sq, 90).data, rot90(sq, 1).data, { rtol: 0, atol: 1e-3 }, 'rotate 90');
    expectClose(rotate(sq, -90).data, rot90(sq, 3).data, { rtol: 0, atol: 1e-3 }, 'rotate -90');
    expectClose(rotate(sq, 0).data, sq.data, { rtol: 0, atol: 0 }, 'rotate 0');
  });

  test('arbitrary angles: reflection keeps the size and the value range; the inscribed rectangle fits', () => {
    const img = image(24, 16, 7);
    const out = rotate(img, 30, 'reflect');
    expect([out.width, out.height]).toEqual([24, 16]);
    for (const v of out.data) expect(v >= 0 && v <= 255).toBe(true);
    // A corner of the reflected result mirrors the image, it is not a fill colour: rotating a
    // constant image leaves it constant.
    const flat = { width: 24, height: 16, data: new Float32Array(24 * 16 * 3).fill(77) };
    expect(rotate(flat, 30, 'reflect').data.every((v) => Math.abs(v - 77) < 1e-4)).toBe(true);

    expect(largestInscribedRect(100, 60, 0)).toEqual([100, 60]);
    const [w45] = largestInscribedRect(100, 100, Math.PI / 4);
    expect(w45).toBeCloseTo(100 / Math.SQRT2, 9);
    const rng = new Rng(1);
    for (let i = 0; i < 500; i++) {
      const W = 10 + rng.int(300);
      const H = 10 + rng.int(300);
      const t = rng.uniform(0, 2 * Math.PI);
      const [w, h] = largestInscribedRect(W, H, t);
      expect(w > 0 && h > 0).toBe(true);
      // Each corner, rotated back into the source frame, lies inside the W x H image.
      for (const [sx, sy] of [[-1, -1], [1, -1], [1, 1], [-1, 1]]) {
        const x = (sx * w) / 2;
        const y = (sy * h) / 2;
        const u = x * Math.cos(t) - y * Math.sin(t);
        const v = x * Math.sin(t) + y * Math.cos(t);
        expect(Math.abs(u)).toBeLessThanOrEqual(W / 2 + 1e-6);
        expect(Math.abs(v)).toBeLessThanOrEqual(H / 2 + 1e-6);
      }
    }
    const ins = rotate(img, 30, 'inscribed');
    const [ew, eh] = largestInscribedRect(24, 16, Math.PI / 6);
    expect([ins.width, ins.height]).toEqual([Math.floor(ew), Math.floor(eh)]);
  });
});

describe('colour', () => {
  test('HSV by hand and round trips', () => {
    const [h, s, v] = rgbToHsv(0.8, 0.4, 0.2);
    expect(h).toBeCloseTo(1 / 18, 12); // (g - b) / (6 * range) = 0.2 / 3.6
    expect(s).toBeCloseTo(0.75, 12);
    expect(v).toBeCloseTo(0.8, 12);
    expect(rgbToHsv(0, 0, 1)).toEqual([4 / 6, 1, 1]);
    expect(rgbToHsv(0.5, 0.5, 0.5)).toEqual([0, 0, 0.5]);
    const r = testRng(8);
    for (let i = 0; i < 1000; i++) {
      const rgb: [number, number, number] = [r(), r(), r()];
      expectClose(hsvToRgb(...rgbToHsv(...rgb)), rgb, { rtol: 0, atol: 1e-12 }, 'hsv round trip');
    }
  });

  test('saturation, hue, brightness, contrast against hand computations', () => {
    // Saturation 0.75 -> 0.375 at the same hue and value: c = s v = 0.3, m = 0.5, x = c / 3.
    expectClose(adjustSaturation(Float32Array.of(0.8, 0.4, 0.2), 0.5), [0.8, 0.6, 0.5], { rtol: 0, atol: 1e-6 }, 'saturation 0.5');
    // Saturation clamps at 1: the minimum channel goes to 0.
    expectClose(adjustSaturation(Float32Array.of(0.8, 0.4, 0.2), 10), [0.8, 0.8 / 3, 0], { rtol: 0, atol: 1e-6 }, 'saturation clamp');
    expectClose(adjustSaturation(Float32Array.of(0.8, 0.4, 0.2), 0), [0.8, 0.8, 0.8], { rtol: 0, atol: 1e-6 }, 'saturation 0');
    // Hue: a third of a turn takes red to green to blue; greys do not change; wraps around.
    expectClose(adjustHue(Float32Array.of(1, 0, 0, 0, 1, 0, 0.3, 0.3, 0.3), 1 / 3), [0, 1, 0, 0, 0, 1, 0.3, 0.3, 0.3], { rtol: 0, atol: 1e-6 }, 'hue');
    expectClose(adjustHue(Float32Array.of(1, 0, 0), -1 / 6), [1, 0, 1], { rtol: 0, atol: 1e-6 }, 'hue wraps');
    expectClose(adjustHue(Float32Array.of(0.8, 0.4, 0.2), 0.5), [0.2, 0.6, 0.8], { rtol: 0, atol: 1e-6 }, 'hue half turn');
    expectClose(adjustBrightness(Float32Array.of(0.1, 0.5, 0.9), 0.2), [0.3, 0.7, 1.1], { rtol: 0, atol: 1e-6 }, 'brightness (no clamp)');
    // Contrast: per-channel means (0.2, 0.5, 0.6) over two pixels; deviations doubled.
    expectClose(adjustContrast(Float32Array.of(0.1, 0.4, 0.6, 0.3, 0.6, 0.6), 2), [0, 0.3, 0.6, 0.4, 0.7, 0.6], { rtol: 0, atol: 1e-6 }, 'contrast');
  });

  test("distort_color applies TF-Slim's ordering with the recorded strengths, then clips", () => {
    const base = image(9, 7, 9).data.map((v) => v / 255);
    const seen = new Set<number>();
    for (let seed = 0; seed < 40; seed++) {
      for (const mode of ['full', 'fast'] as const) {
        const rec: Partial<AugmentRecord> = {};
        const out = distortColor(base.slice(), new Rng(seed), mode, rec);
        if (mode === 'full') seen.add(rec.ordering!);
        const ops = COLOR_ORDERINGS[mode][rec.ordering!];
        const expected = base.slice();
        for (const op of ops) {
          if (op === 'brightness') {
            expect(Math.abs(rec.brightness!)).toBeLessThanOrEqual(32 / 255);
            adjustBrightness(expected, rec.brightness!);
          } else if (op === 'saturation') {
            expect(rec.saturation! >= 0.5 && rec.saturation! <= 1.5).toBe(true);
            adjustSaturation(expected, rec.saturation!);
          } else if (op === 'hue') {
            expect(Math.abs(rec.hue!)).toBeLessThanOrEqual(0.2);
            adjustHue(expected, rec.hue!);
          } else {
            expect(rec.contrast! >= 0.5 && rec.contrast! <= 1.5).toBe(true);
            adjustContrast(expected, rec.contrast!);
          }
        }
        expect(out).toEqual(expected.map((v) => Math.min(1, Math.max(0, v))));
        expect(ops.length).toBe(mode === 'full' ? 4 : 2);
      }
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });
});

// Saliency pictures: colour maps, robust normalisation, overlays, PNG output. Host only (no GPU).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type RgbImage,
  colorAt,
  colorize,
  encodePng,
  float32Bytes,
  normaliseMap,
  overlay,
  percentile,
  sideBySide,
  toDisplayImage,
  writePng,
} from '../src/explain/heatmap.ts';
import { rng } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'incept-heatmap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function randomImage(width: number, height: number, seed: number): RgbImage {
  const r = rng(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(r() * 256)) };
}

describe('colour maps', () => {
  it('inferno hits its table exactly and interpolates linearly between entries', () => {
    expect(colorAt(0)).toEqual([0, 0, 4]);
    expect(colorAt(1)).toEqual([252, 255, 164]);
    expect(colorAt(1 / 9)).toEqual([27, 12, 65]);
    expect(colorAt(8 / 9)).toEqual([247, 209, 61]);
    // Halfway between entries 4 (#a52c60) and 5 (#cf4446).
    expect(colorAt(0.5)).toEqual([186, 56, 83]);
    // Clipped outside [0, 1]; NaN is treated as 0.
    expect(colorAt(-3)).toEqual([0, 0, 4]);
    expect(colorAt(7)).toEqual([252, 255, 164]);
    expect(colorAt(Number.NaN)).toEqual([0, 0, 4]);
  });

  it('inferno gets brighter monotonically (a perceptual ordering)', () => {
    let last = -1;
    for (let i = 0; i <= 100; i++) {
      const [r, g, b] = colorAt(i / 100);
      const luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
      expect(luma).toBeGreaterThan(last);
      last = luma;
    }
  });

  it('jet runs dark blue, cyan, green-yellow, red, dark red', () => {
    expect(colorAt(0, 'jet')).toEqual([0, 0, 128]);
    expect(colorAt(0.25, 'jet')).toEqual([0, 128, 255]);
    expect(colorAt(0.5, 'jet')).toEqual([128, 255, 128]);
    expect(colorAt(0.75, 'jet')).toEqual([255, 128, 0]);
    expect(colorAt(1, 'jet')).toEqual([128, 0, 0]);
    expect(() => colorAt(0.5, 'viridis' as never)).toThrow(/unknown colour map 'viridis'/);
  });
});

describe('normalisation', () => {
  it('percentile interpolates between ranks', () => {
    expect(percentile([3, 1, 2, 4], 0)).toBe(1);
    expect(percentile([3, 1, 2, 4], 100)).toBe(4);
    expect(percentile([3, 1, 2, 4], 50)).toBe(2.5);
    expect(percentile(Array.from({ length: 101 }, (_, i) => i), 99)).toBe(99);
  });

  it('divides by the 99th percentile and clips, so one outlier does not wash the map out', () => {
    const map = Array.from({ length: 101 }, (_, i) => i); // 0..100: the 99th percentile is 99
    map[100] = 1e6;
    const v = normaliseMap(map);
    expect(v[0]).toBe(0);
    expect(v[50]).toBeCloseTo(50 / 99, 6);
    expect(v[99]).toBe(1);
    expect(v[100]).toBe(1);
    // Another clip point.
    expect(normaliseMap(map, { clip: 50 })[25]).toBeCloseTo(0.5, 6);
  });

  it('falls back to the maximum for sparse maps, keeps zero maps zero, refuses non-finite values', () => {
    const sparse = new Float32Array(1000);
    sparse[7] = 4;
    sparse[8] = 2;
    const v = normaliseMap(sparse);
    expect(v[7]).toBe(1);
    expect(v[8]).toBe(0.5);
    expect(v[9]).toBe(0);
    expect([...normaliseMap(new Float32Array(5))]).toEqual([0, 0, 0, 0, 0]);
    expect(() => normaliseMap([1, Number.NaN])).toThrow(/map value 1 is NaN/);
  });
});

describe('overlays and PNGs', () => {
  it('the overlay equals the image where saliency is 0 and blends toward the colour where it is high', () => {
    const [w, h] = [13, 7];
    const image = randomImage(w, h, 1);
    const map = new Float32Array(w * h);
    const hot = 3 * w + 5;
    map[hot] = 10; // the only salient pixel: normalised to 1
    const out = overlay(image, map, { maxAlpha: 0.6 });
    for (let p = 0; p < w * h; p++) {
      const px = [...out.data.subarray(p * 3, p * 3 + 3)];
      const im = [...image.data.subarray(p * 3, p * 3 + 3)];
      if (p === hot) {
        const top = colorAt(1);
        expect(px).toEqual(im.map((x, c) => Math.round(0.4 * x + 0.6 * top[c])));
      } else {
        expect(px).toEqual(im);
      }
    }
    // An all-zero map leaves the whole image unchanged.
    expect(overlay(image, new Float32Array(w * h)).data).toEqual(image.data);
    // Half saliency: half the opacity, the colour at 0.5.
    const half = new Float32Array(w * h).fill(0.5);
    half[0] = 1; // with clip = 100 the scale is the maximum, 1, so the other pixels normalise to 0.5
    const o2 = overlay(image, half, { maxAlpha: 0.8, clip: 100, colorMap: 'jet' });
    const c = colorAt(0.5, 'jet');
    expect([...o2.data.subarray(3, 6)]).toEqual([...image.data.subarray(3, 6)].map((x, k) => Math.round(0.6 * x + 0.4 * c[k])));
  });

  it('refuses a map of another size', () => {
    expect(() => overlay(randomImage(4, 4, 2), new Float32Array(15))).toThrow(/the map has 15 values; the 4x4 image needs 16/);
  });

  it('maps preprocessed [-1, 1] values back to 0..255, and mean/std values too', () => {
    const d = toDisplayImage(Float32Array.from([-1, 0, 1, -2, 0.5, 2]), 1, 2);
    expect([...d.data]).toEqual([0, 128, 255, 0, 191, 255]);
    const m = toDisplayImage(Float32Array.from([0, 1, -1]), 1, 1, { mean: [100, 110, 120], std: [10, 20, 30] });
    expect([...m.data]).toEqual([100, 130, 90]);
  });

  it('writes PNGs that decode back to the same size and pixels; side by side puts image | overlay', () => {
    const [w, h] = [17, 11];
    const image = randomImage(w, h, 3);
    const r = rng(4);
    const map = Float32Array.from({ length: w * h }, () => r());
    const over = overlay(image, map);
    const file = join(dir, 'overlay.png');
    writePng(file, over);
    const back = PNG.sync.read(readFileSync(file));
    expect([back.width, back.height]).toEqual([w, h]);
    for (let p = 0; p < w * h; p++) {
      expect([...back.data.subarray(p * 4, p * 4 + 4)]).toEqual([...over.data.subarray(p * 3, p * 3 + 3), 255]);
    }

    const both = sideBySide([image, over], 3);
    expect([both.width, both.height]).toEqual([2 * w + 3, h]);
    const png = PNG.sync.read(encodePng(both));
    expect([png.width, png.height]).toEqual([2 * w + 3, h]);
    const at = (x: number, y: number) => [...png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3)];
    const px = (im: RgbImage, x: number, y: number) => [...im.data.subarray((y * w + x) * 3, (y * w + x) * 3 + 3)];
    expect(at(0, 0)).toEqual(px(image, 0, 0));
    expect(at(w - 1, h - 1)).toEqual(px(image, w - 1, h - 1));
    expect(at(w + 1, 5)).toEqual([255, 255, 255]); // the gap
    expect(at(w + 3, 0)).toEqual(px(over, 0, 0));
    expect(at(2 * w + 2, h - 1)).toEqual(px(over, w - 1, h - 1));

    const heat = colorize(map, w, h, { colorMap: 'jet' });
    expect([...heat.data.subarray(0, 3)]).toEqual(colorAt(normaliseMap(map)[0], 'jet'));
  });

  it('raw maps are little-endian float32', () => {
    const b = float32Bytes(Float32Array.from([1.5, -2, 0.1]));
    expect(b.length).toBe(12);
    expect([...b.subarray(0, 4)]).toEqual([0, 0, 0xc0, 0x3f]);
    expect(b.readFloatLE(8)).toBe(Math.fround(0.1));
  });
});

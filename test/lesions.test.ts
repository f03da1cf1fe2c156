// Procedural lesions: deterministic, balanced, masks that match the pixels, a manifest the dataset
// reader takes, and classes that a simple hand-made feature separates better than chance but not
// perfectly.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { generateLesion, generateLesionDataset, type Lesion, LESION_CLASSES, lesionLabels, lesionSeed } from '../src/demo/lesions.ts';
import { readImage } from '../src/image/decode.ts';
import { classCounts, readCsvDataset, splitDataset } from '../src/train/dataset.ts';

const tmp = mkdtempSync(join(tmpdir(), 'incept-lesions-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const luminance = (d: Float32Array, p: number) => 0.299 * d[p * 3] + 0.587 * d[p * 3 + 1] + 0.114 * d[p * 3 + 2];

/** Probability that a random malignant value exceeds a random benign one (ties count half). */
function auc(malignant: number[], benign: number[]): number {
  let s = 0;
  for (const m of malignant) for (const b of benign) s += m > b ? 1 : m === b ? 0.5 : 0;
  return s / (malignant.length * benign.length);
}

describe('one lesion in memory', () => {
  test('deterministic per seed; RGB 0..255 integers; a 0/1 mask', () => {
    const a = generateLesion({ size: 40, seed: 3 });
    const b = generateLesion({ size: 40, seed: 3 });
    expect(a).toEqual(b);
    expect(generateLesion({ size: 40, seed: 4 }).image.data).not.toEqual(a.image.data);
    expect(a.image.data.length).toBe(40 * 40 * 3);
    expect(a.image.data.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)).toBe(true);
    expect(a.mask.length).toBe(40 * 40);
    expect(a.mask.every((m) => m === 0 || m === 1)).toBe(true);
    expect(a.className).toBe(LESION_CLASSES[a.label]);
    expect(() => generateLesion({ size: 8, seed: 1 })).toThrow('size 8');
  });

  test('hairs are drawn over the image; the mask does not change', () => {
    const bare = generateLesion({ size: 64, seed: 9, malignant: true, hair: false });
    const hairy = generateLesion({ size: 64, seed: 9, malignant: true, hair: true });
    expect(hairy.features.hair).toBe(true);
    expect(bare.features.hair).toBe(false);
    expect(hairy.mask).toEqual(bare.mask);
    // Hair pixels are much darker than the same pixel without hair.
    let darker = 0;
    for (let p = 0; p < 64 * 64; p++) if (luminance(hairy.image.data, p) < luminance(bare.image.data, p) - 40) darker++;
    expect(darker).toBeGreaterThan(20);
  });

  test('benign lesions have at most one atypical ABCD criterion, malignant ones two or more', () => {
    for (let seed = 0; seed < 60; seed++) {
      const l = generateLesion({ size: 16, seed });
      if (l.label === 0) expect(l.features.atypical.length).toBeLessThanOrEqual(1);
      else expect(l.features.atypical.length).toBeGreaterThanOrEqual(2);
    }
  });
});

describe('a dataset on disk', () => {
  const opts = { count: 13, size: 48, seed: 21, hair: 0.5, validationFraction: 0.25 };
  const a = generateLesionDataset({ ...opts, dir: join(tmp, 'a') });
  const b = generateLesionDataset({ ...opts, dir: join(tmp, 'b') });

  test('deterministic: the same options write the same files', () => {
    expect(b.items).toEqual(a.items);
    expect(readFileSync(b.manifest, 'utf8')).toBe(readFileSync(a.manifest, 'utf8'));
    for (const it of a.items) {
      expect(readFileSync(join(tmp, 'b', it.image)).equals(readFileSync(join(tmp, 'a', it.image)))).toBe(true);
      expect(readFileSync(join(tmp, 'b', it.mask)).equals(readFileSync(join(tmp, 'a', it.mask)))).toBe(true);
    }
  });

  test('balanced classes; the manifest and label list read back as a dataset with its split', () => {
    const ds = readCsvDataset(a.manifest, { classes: a.labels });
    expect(ds.classes).toEqual(['benign', 'malignant']);
    expect(classCounts(ds)).toEqual([7, 6]);
    expect(a.items.map((it) => it.label)).toEqual(lesionLabels(13, 21).map((l) => LESION_CLASSES[l]));
    const split = splitDataset(ds);
    expect(split.by).toBe('manifest');
    expect(classCounts(split.validation)).toEqual([2, 2]); // round(7 / 4), round(6 / 4)
    expect(readFileSync(a.manifest, 'utf8').split('\n')[0]).toBe('path,label,split');
  });

  test('the PNGs hold exactly the in-memory image and mask', () => {
    a.items.forEach((it, i) => {
      const lesion = generateLesion({ size: 48, seed: lesionSeed(21, i), malignant: it.label === 'malignant', hair: 0.5 });
      expect(lesion.features).toEqual(it.features);
      expect(readImage(join(tmp, 'a', it.image)).data).toEqual(lesion.image.data);
      const mask = readImage(join(tmp, 'a', it.mask)).data.filter((_, k) => k % 3 === 0);
      expect(mask).toEqual(Float32Array.from(lesion.mask, (m) => m * 255));
    });
  });
});

describe('the images are learnable, not trivial', () => {
  const N = 80;
  const S = 64;
  const labels = lesionLabels(N, 1);
  const lesions: Lesion[] = labels.map((l, i) => generateLesion({ size: S, seed: lesionSeed(1, i), malignant: l === 1, hair: 0 }));

  test('the mask agrees with the pixels: the lesion is darker, a luminance threshold recovers it', () => {
    for (const { image, mask } of lesions) {
      let inside = 0;
      let outside = 0;
      let n = 0;
      for (let p = 0; p < S * S; p++) {
        if (mask[p]) (inside += luminance(image.data, p)), n++;
        else outside += luminance(image.data, p);
      }
      inside /= n;
      outside /= S * S - n;
      expect(outside - inside).toBeGreaterThan(20);
      const threshold = (inside + outside) / 2;
      let agree = 0;
      for (let p = 0; p < S * S; p++) if ((luminance(image.data, p) < threshold ? 1 : 0) === mask[p]) agree++;
      expect(agree / (S * S)).toBeGreaterThan(0.93);
    }
  });

  test('lesion area and colour spread separate the classes better than chance, not perfectly', () => {
    const area: number[][] = [[], []];
    const spread: number[][] = [[], []];
    for (const { image, mask, label } of lesions) {
      let n = 0;
      const sum = [0, 0, 0];
      const sq = [0, 0, 0];
      for (let p = 0; p < S * S; p++) {
        if (!mask[p]) continue;
        n++;
        for (let c = 0; c < 3; c++) {
          sum[c] += image.data[p * 3 + c];
          sq[c] += image.data[p * 3 + c] ** 2;
        }
      }
      area[label].push(n / (S * S));
      spread[label].push(sum.reduce((s, v, c) => s + Math.sqrt(sq[c] / n - (v / n) ** 2), 0) / 3);
    }
    expect([area[0].length, area[1].length]).toEqual([40, 40]);
    const byArea = auc(area[1], area[0]);
    const bySpread = auc(spread[1], spread[0]);
    expect(byArea).toBeGreaterThan(0.65);
    expect(byArea).toBeLessThan(0.97);
    expect(bySpread).toBeGreaterThan(0.6);
    expect(bySpread).toBeLessThan(0.97);
  });
});

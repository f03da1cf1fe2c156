// Procedural dermoscopy-like lesion images for the demo: skin-toned background with texture, an
// optional dermatoscope vignette and hairs, and one pigmented lesion whose mask is known exactly.
//
// The two classes differ by the ABCD rule of dermoscopy:
//   A  asymmetry        odd harmonics of the outline (egg, kidney and triangular shapes), the
//                       centre of pigment off the centre of the shape;
//   B  border           many high harmonics plus a blurred edge (irregular, notched, fading);
//   C  colour           several colours (light and dark browns, black, blue-grey veil, red) in
//                       blotches, instead of one brown with a gentle radial gradient;
//   D  diameter         larger lesions.
// Each criterion is drawn "typical" or "atypical" from overlapping ranges. A benign lesion is
// typical on all four, except one atypical criterion 25% of the time (as dysplastic naevi are);
// a malignant lesion is atypical on two, three or four criteria. So every single feature separates
// the classes better than chance but not perfectly, and a model that combines them does better.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import type { DecodedImage } from '../image/decode.ts';
import { mixSeed, Rng } from '../train/rng.ts';

export const LESION_CLASSES = ['benign', 'malignant'] as const;
export type LesionClass = (typeof LESION_CLASSES)[number];
export type Criterion = 'A' | 'B' | 'C' | 'D';

export interface LesionOptions {
  /** Image side in pixels (square images). */
  size: number;
  seed: number;
  /** The class; default: decided by the seed, 50/50. */
  malignant?: boolean;
  /** Probability of hairs (default 0.3); true = 1, false = 0. */
  hair?: boolean | number;
}

/** The generator's own parameters, for tests and for checking what a model picks up. */
export interface LesionFeatures {
  /** Atypical criteria of the ABCD rule. */
  atypical: Criterion[];
  /** Mean outline diameter as a fraction of the image side. */
  diameter: number;
  /** Amplitude of the odd (asymmetric) harmonics, relative to the radius. */
  asymmetry: number;
  /** Amplitude of the high (irregular) harmonics, relative to the radius. */
  border: number;
  /** Distinct lesion colours used. */
  colors: number;
  hair: boolean;
}

export interface Lesion {
  width: number;
  height: number;
  /** RGB, 0..255, height x width x 3 (the shape decodeImage returns). */
  image: DecodedImage;
  /** 1 inside the lesion, 0 outside; height x width. */
  mask: Uint8Array;
  label: 0 | 1;
  className: LesionClass;
  features: LesionFeatures;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

type RGB = [number, number, number];

const lerp = (a: number, b: number, t: number) => a + (b - a) * t;
const mix = (a: RGB, b: RGB, t: number): RGB => [lerp(a[0], b[0], t), lerp(a[1], b[1], t), lerp(a[2], b[2], t)];
const clamp01 = (x: number) => Math.min(1, Math.max(0, x));
const smoothstep = (x: number) => {
  const t = clamp01(x);
  return t * t * (3 - 2 * t);
};

/**
 * Value noise on an S x S pixel grid: random values on a (cells+1)^2 lattice, smoothly
 * interpolated, in [-1, 1]. Computed as a whole field (per-row and per-column weights
 * precomputed) because it runs for every pixel of every image.
 */
function valueNoiseField(rng: Rng, cells: number, S: number): Float32Array {
  const n = cells + 1;
  const grid = new Float64Array(n * n);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.float() * 2 - 1;
  const idx = new Int32Array(S);
  const w = new Float64Array(S);
  for (let p = 0; p < S; p++) {
    const g = ((p + 0.5) / S) * cells;
    idx[p] = Math.min(cells - 1, Math.floor(g));
    w[p] = smoothstep(g - idx[p]);
  }
  const out = new Float32Array(S * S);
  for (let y = 0; y < S; y++) {
    const r0 = idx[y] * n;
    const r1 = r0 + n;
    const fy = w[y];
    for (let x = 0; x < S; x++) {
      const i = idx[x];
      const fx = w[x];
      const top = grid[r0 + i] + (grid[r0 + i + 1] - grid[r0 + i]) * fx;
      const bot = grid[r1 + i] + (grid[r1 + i + 1] - grid[r1 + i]) * fx;
      out[y * S + x] = top + (bot - top) * fy;
    }
  }
  return out;
}

/** Fractal value noise: octaves of doubling frequency and halving amplitude, roughly in [-1, 1]. */
function fbmField(rng: Rng, cells: number, octaves: number, S: number): Float32Array {
  const out = new Float32Array(S * S);
  const norm = 1 / (2 - 2 ** (1 - octaves));
  for (let o = 0; o < octaves; o++) {
    const layer = valueNoiseField(rng, cells << o, S);
    const a = norm / 2 ** o;
    for (let i = 0; i < out.length; i++) out[i] += layer[i] * a;
  }
  return out;
}

/** A random subset of k of the items. */
function pick<T>(rng: Rng, items: readonly T[], k: number): T[] {
  return (rng.shuffle([...items]) as T[]).slice(0, k);
}

// Colours (sRGB 0..255).
const SKIN_LIGHT: RGB = [238, 200, 178];
const SKIN_DARK: RGB = [190, 136, 102];
const PALETTE: Record<string, RGB> = {
  lightBrown: [168, 116, 80],
  brown: [128, 80, 52],
  darkBrown: [86, 52, 34],
  black: [38, 28, 28],
  blueGrey: [112, 116, 132],
  red: [164, 98, 86],
};

// ---------------------------------------------------------------------------------------------
// One lesion

/** One lesion image and its mask, in memory. Same options, same bytes. */
export function generateLesion(opts: LesionOptions): Lesion {
  const S = opts.size;
  if (!(Number.isInteger(S) && S >= 16)) throw new Error(`generateLesion: size ${S} must be an integer >= 16`);
  const rng = new Rng(opts.seed);
  const malignant = opts.malignant ?? rng.bool(0.5);
  const hairProbability = opts.hair === true ? 1 : opts.hair === false ? 0 : (opts.hair ?? 0.3);

  // Which ABCD criteria are atypical.
  const all: Criterion[] = ['A', 'B', 'C', 'D'];
  let atypical: Criterion[];
  if (malignant) {
    const u = rng.float();
    atypical = pick(rng, all, u < 0.4 ? 2 : u < 0.75 ? 3 : 4);
  } else {
    atypical = rng.bool(0.25) ? pick(rng, all, 1) : [];
  }
  atypical.sort();
  const is = (c: Criterion) => atypical.includes(c);

  // D: diameter, as a fraction of the image side (overlapping ranges).
  const diameter = is('D') ? rng.uniform(0.36, 0.62) : rng.uniform(0.2, 0.4);
  const R = (diameter * S) / 2;
  const cx = S / 2 + rng.normal(0, 0.04 * S);
  const cy = S / 2 + rng.normal(0, 0.04 * S);

  // Outline r(theta) = R (1 + sum of harmonics). Ellipticity (k = 2) keeps the mirror symmetry
  // of both axes; odd harmonics break it (A); high harmonics make the border irregular (B).
  const harmonics: { k: number; amp: number; phase: number }[] = [];
  harmonics.push({ k: 2, amp: rng.uniform(0, 0.12), phase: rng.uniform(0, 2 * Math.PI) });
  const asymmetry = is('A') ? rng.uniform(0.12, 0.24) : rng.uniform(0, 0.05);
  for (const k of [1, 3]) harmonics.push({ k, amp: asymmetry * rng.uniform(0.4, 1), phase: rng.uniform(0, 2 * Math.PI) });
  const border = is('B') ? rng.uniform(0.05, 0.1) : rng.uniform(0.005, 0.02);
  for (let k = 4; k <= 24; k++) {
    harmonics.push({ k, amp: (border * rng.uniform(0, 2)) / (k - 3) ** 0.9, phase: rng.uniform(0, 2 * Math.PI) });
  }
  const STEPS = 1024;
  const radius = new Float64Array(STEPS + 1);
  for (let i = 0; i <= STEPS; i++) {
    const t = (i / STEPS) * 2 * Math.PI;
    let r = 1;
    for (const h of harmonics) r += h.amp * Math.cos(h.k * t + h.phase);
    radius[i] = R * Math.max(0.35, r);
  }
  const outline = (theta: number) => {
    const u = ((theta / (2 * Math.PI)) % 1 + 1) % 1 * STEPS;
    const i = Math.floor(u);
    return lerp(radius[i], radius[i + 1], u - i);
  };
  // Edge softness in pixels: sharp for a regular border, fading for an irregular one.
  const edge = Math.max(0.8, (is('B') ? rng.uniform(0.05, 0.1) : rng.uniform(0.01, 0.03)) * R);

  // C: colours. Typical: one brown, darker towards the centre. Atypical: blotches of 3-5 colours.
  const base = mix(PALETTE.lightBrown, PALETTE.darkBrown, rng.uniform(0.1, 0.7));
  const centreDark = rng.uniform(0.1, 0.3);
  let colorNames: string[] = [];
  if (is('C')) colorNames = pick(rng, ['darkBrown', 'black', 'blueGrey', 'red', 'lightBrown'], 2 + rng.int(3));
  const colors = 1 + colorNames.length;
  const blotchNoise = colorNames.map(() => fbmField(rng, 3, 3, S));
  const blotchLevel = colorNames.map(() => rng.uniform(0.05, 0.3));
  // Asymmetric pigment: the darkest point may sit off the centre of the shape.
  const offset = is('A') ? rng.uniform(0.2, 0.45) * R : rng.uniform(0, 0.08) * R;
  const offsetAngle = rng.uniform(0, 2 * Math.PI);
  const px = cx + offset * Math.cos(offsetAngle);
  const py = cy + offset * Math.sin(offsetAngle);
  const opacity = rng.uniform(0.85, 0.97);
  const lesionTexture = fbmField(rng, 12, 3, S);

  // Skin: a tone, large-scale blotchiness, fine texture, pixel noise, a dermatoscope vignette.
  const skin = mix(SKIN_LIGHT, SKIN_DARK, rng.float());
  skin[0] += rng.uniform(-6, 6);
  skin[2] += rng.uniform(-6, 6);
  const skinLarge = fbmField(rng, 3, 2, S);
  const skinFine = fbmField(rng, 16, 2, S);
  const redness = valueNoiseField(rng, 2, S);
  const rednessAmount = rng.uniform(0, 14);
  const vignette = rng.uniform(0, 0.35);

  const data = new Float32Array(S * S * 3);
  const mask = new Uint8Array(S * S);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const u = (x + 0.5) / S;
      const v = (y + 0.5) / S;
      const p = y * S + x;
      const shade = 1 + 0.05 * skinLarge[p] + 0.03 * skinFine[p];
      const red = rednessAmount * Math.max(0, redness[p]);
      let col: RGB = [skin[0] * shade + red, skin[1] * shade - red * 0.3, skin[2] * shade - red * 0.2];

      // The lesion, blended by a soft edge around the outline; the mask is its half-way contour.
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const rho = Math.hypot(dx, dy);
      const rOut = outline(Math.atan2(dy, dx));
      if (rho < rOut) mask[p] = 1;
      const alpha = smoothstep(0.5 + (rOut - rho) / (2 * edge));
      if (alpha > 0) {
        // Distance from the pigment centre, relative to the outline: 0 at the centre, 1 at the edge.
        const q = Math.min(1, Math.hypot(x + 0.5 - px, y + 0.5 - py) / rOut);
        let pig = mix(base, PALETTE.darkBrown, centreDark * (1 - q * q));
        for (let c = 0; c < colorNames.length; c++) {
          const w = smoothstep((blotchNoise[c][p] - blotchLevel[c]) * 4);
          pig = mix(pig, PALETTE[colorNames[c]], w * 0.8);
        }
        const tex = 1 + 0.1 * lesionTexture[p];
        const a = alpha * opacity;
        col = [lerp(col[0], pig[0] * tex, a), lerp(col[1], pig[1] * tex, a), lerp(col[2], pig[2] * tex, a)];
      }

      // Vignette: the round field of a dermatoscope darkens the corners.
      const rc = Math.hypot(u - 0.5, v - 0.5) / Math.SQRT1_2;
      const dark = 1 - vignette * smoothstep((rc - 0.75) / 0.25);
      for (let c = 0; c < 3; c++) data[p * 3 + c] = col[c] * dark;
    }
  }

  const hair = rng.bool(hairProbability);
  if (hair) drawHairs(data, S, rng);
  // Sensor noise (triangular, standard deviation 2.5), then 8-bit values as a PNG would hold them.
  const noise = 2.5 * Math.sqrt(6) * 2 ** -32;
  for (let i = 0; i < data.length; i++) {
    const n = (rng.next() + rng.next() - 2 ** 32) * noise;
    data[i] = Math.round(Math.min(255, Math.max(0, data[i] + n)));
  }

  const label = malignant ? 1 : 0;
  return {
    width: S,
    height: S,
    image: { width: S, height: S, data },
    mask,
    label,
    className: LESION_CLASSES[label],
    features: { atypical, diameter, asymmetry, border, colors, hair },
  };
}

/** Dark, thin, gently curved hairs across the image (quadratic Bezier curves, anti-aliased). */
function drawHairs(data: Float32Array, S: number, rng: Rng): void {
  const count = 2 + rng.int(9);
  const cover = new Float32Array(S * S);
  for (let h = 0; h < count; h++) {
    const p0 = [rng.uniform(-0.1, 1.1) * S, rng.uniform(-0.1, 1.1) * S];
    const angle = rng.uniform(0, 2 * Math.PI);
    const len = rng.uniform(0.3, 0.9) * S;
    const p2 = [p0[0] + len * Math.cos(angle), p0[1] + len * Math.sin(angle)];
    const bend = rng.uniform(-0.25, 0.25) * len;
    const p1 = [(p0[0] + p2[0]) / 2 - bend * Math.sin(angle), (p0[1] + p2[1]) / 2 + bend * Math.cos(angle)];
    const width = rng.uniform(0.5, 1.1) * Math.max(1, S / 256);
    const steps = Math.ceil(len * 2);
    for (let i = 0; i <= steps; i++) {
      const t = i / steps;
      const bx = (1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t * t * p2[0];
      const by = (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t * t * p2[1];
      const reach = Math.ceil(width + 1);
      for (let y = Math.max(0, Math.floor(by) - reach); y <= Math.min(S - 1, Math.floor(by) + reach); y++) {
        for (let x = Math.max(0, Math.floor(bx) - reach); x <= Math.min(S - 1, Math.floor(bx) + reach); x++) {
          const d = Math.hypot(x + 0.5 - bx, y + 0.5 - by);
          const a = clamp01(width + 0.5 - d);
          if (a > cover[y * S + x]) cover[y * S + x] = a;
        }
      }
    }
  }
  const hairColor = mix([30, 22, 18], [70, 50, 40], rng.float());
  for (let p = 0; p < S * S; p++) {
    const a = cover[p] * 0.9;
    if (a > 0) for (let c = 0; c < 3; c++) data[p * 3 + c] = lerp(data[p * 3 + c], hairColor[c], a);
  }
}

// ---------------------------------------------------------------------------------------------
// A dataset on disk

export interface LesionDatasetOptions {
  count: number;
  size: number;
  seed: number;
  /** Output folder (created). */
  dir: string;
  /** Probability of hairs per image (default 0.3). */
  hair?: number;
  /** When given, a split column holds out this fraction of each class as validation. */
  validationFraction?: number;
}

export interface LesionItem {
  /** Paths relative to dir. */
  image: string;
  mask: string;
  label: LesionClass;
  split?: 'train' | 'validation';
  features: LesionFeatures;
}

export interface LesionDataset {
  /** dir/manifest.csv: path,label[,split] (what readCsvDataset reads). */
  manifest: string;
  /** dir/labels.txt: the class order. */
  labels: string;
  items: LesionItem[];
}

/** The seed of image i of a dataset, so generateLesion can reproduce any one image. */
export function lesionSeed(seed: number, index: number): number {
  return mixSeed(seed, index);
}

/** The classes of a dataset of `count`: exactly half each (one more benign when odd), in a seeded order. */
export function lesionLabels(count: number, seed: number): (0 | 1)[] {
  const labels = Array.from({ length: count }, (_, i) => (i < Math.ceil(count / 2) ? 0 : 1) as 0 | 1);
  return new Rng(mixSeed(seed, -1)).shuffle(labels) as (0 | 1)[];
}

/**
 * Writes dir/images/lesion_NNNNN.png, dir/masks/lesion_NNNNN.png (0 outside, 255 inside),
 * dir/manifest.csv and dir/labels.txt. Same options, same files.
 */
export function generateLesionDataset(opts: LesionDatasetOptions): LesionDataset {
  const { count, size, seed, dir } = opts;
  if (!(Number.isInteger(count) && count > 0)) throw new Error(`generateLesionDataset: count ${count} must be a positive integer`);
  mkdirSync(join(dir, 'images'), { recursive: true });
  mkdirSync(join(dir, 'masks'), { recursive: true });
  const labels = lesionLabels(count, seed);
  const splits = opts.validationFraction === undefined ? null : stratifiedSplit(labels, opts.validationFraction, seed);
  const digits = Math.max(5, String(count - 1).length);
  const items: LesionItem[] = [];
  for (let i = 0; i < count; i++) {
    const lesion = generateLesion({ size, seed: lesionSeed(seed, i), malignant: labels[i] === 1, hair: opts.hair ?? 0.3 });
    const name = `lesion_${String(i).padStart(digits, '0')}.png`;
    const item: LesionItem = { image: `images/${name}`, mask: `masks/${name}`, label: lesion.className, features: lesion.features };
    if (splits) item.split = splits[i];
    writeFileSync(join(dir, item.image), encodeRgbPng(lesion.image));
    writeFileSync(join(dir, item.mask), encodeMaskPng(lesion.mask, size, size));
    items.push(item);
  }
  const header = splits ? 'path,label,split' : 'path,label';
  const rows = items.map((it) => (splits ? `${it.image},${it.label},${it.split}` : `${it.image},${it.label}`));
  const manifest = join(dir, 'manifest.csv');
  const labelsFile = join(dir, 'labels.txt');
  writeFileSync(manifest, [header, ...rows].join('\n') + '\n');
  writeFileSync(labelsFile, LESION_CLASSES.join('\n') + '\n');
  return { manifest, labels: labelsFile, items };
}

function stratifiedSplit(labels: (0 | 1)[], fraction: number, seed: number): ('train' | 'validation')[] {
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`generateLesionDataset: validation fraction ${fraction} must be in [0, 1)`);
  const rng = new Rng(mixSeed(seed, -2));
  const out: ('train' | 'validation')[] = labels.map(() => 'train');
  for (const c of [0, 1]) {
    const members = rng.shuffle(labels.flatMap((l, i) => (l === c ? [i] : []))) as number[];
    const k = Math.min(members.length - 1, Math.round(members.length * fraction));
    for (let j = 0; j < k; j++) out[members[j]] = 'validation';
  }
  return out;
}

/** 8-bit RGB PNG of an image with 0..255 values. */
export function encodeRgbPng(image: DecodedImage): Buffer {
  const { width, height, data } = image;
  const png = new PNG({ width, height });
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) png.data[p * 4 + c] = Math.min(255, Math.max(0, Math.round(data[p * 3 + c])));
    png.data[p * 4 + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** 8-bit grayscale PNG of a 0/1 mask (0 and 255). */
export function encodeMaskPng(mask: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, inputHasAlpha: false } as ConstructorParameters<typeof PNG>[0]);
  png.data = Buffer.from(mask.map((m) => (m ? 255 : 0)));
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false } as Parameters<typeof PNG.sync.write>[1]);
}

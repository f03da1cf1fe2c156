// A disk cache of a frozen network's activations, so that heads (and the top blocks) can be trained
// many times on features computed once: the frozen part of Inception v3 costs ~0.4 s per 180x180
// image on two CPU cores, and it gives the same values every epoch.
//
// Layout: <dir>/<key>/meta.json + one file per chunk of images and end point (chunk-00003.Mixed_6b.f16),
// float16 (the maps are post-ReLU activations of a uint8-quantized network: half precision loses
// nothing that matters and halves the disk and memory). Chunks are written atomically as they are
// computed, so an interrupted extraction resumes where it stopped. The key names everything that
// decides the values (weights, input size, preprocessing, image list), hashed.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../import/atomic-write.ts';

export interface FeatureSpec {
  /** Everything the values depend on (hashed into the directory name). */
  identity: unknown;
  /** End points and their per-image shapes, e.g. {Mixed_6b: [9, 9, 768], global_pool: [1, 1, 768]}. */
  endPoints: Record<string, number[]>;
  count: number;
  /** Images per chunk (default 32). */
  chunk?: number;
}

export type Features = Record<string, Float32Array>;

export function cacheKey(identity: unknown): string {
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 16);
}

// ---- float16 ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE half bits, round to nearest even. */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** IEEE half bits -> number. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = fromHalf(i);
  return t;
})();

function encodeHalf(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toHalf(values[i]);
  return new Uint8Array(out.buffer);
}

// ---- the cache ----

const perImage = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * The features of `spec.count` images: read from the cache where present, computed by
 * `compute(start, n)` (which returns every end point for images [start, start + n)) where not.
 * `onChunk` reports progress (images done, of count).
 */
export async function cachedFeatures(
  dir: string,
  spec: FeatureSpec,
  compute: (start: number, n: number) => Promise<Features>,
  onChunk?: (done: number, count: number, computed: boolean) => void,
): Promise<Features> {
  const chunk = spec.chunk ?? 32;
  const root = join(dir, cacheKey({ identity: spec.identity, endPoints: spec.endPoints, count: spec.count, chunk }));
  mkdirSync(root, { recursive: true });
  writeFileAtomic(join(root, 'meta.json'), [Buffer.from(JSON.stringify({ identity: spec.identity, endPoints: spec.endPoints, count: spec.count, chunk }, null, 1))]);
  const names = Object.keys(spec.endPoints);
  const out: Features = Object.fromEntries(names.map((n) => [n, new Float32Array(spec.count * perImage(spec.endPoints[n]))]));
  for (let start = 0; start < spec.count; start += chunk) {
    const n = Math.min(chunk, spec.count - start);
    const file = (name: string) => join(root, `chunk-${String(start / chunk).padStart(5, '0')}.${name}.f16`);
    const have = names.every((name) => existsSync(file(name)));
    if (have) {
      for (const name of names) {
        const bytes = readFileSync(file(name));
        const per = perImage(spec.endPoints[name]);
        if (bytes.length !== n * per * 2) throw new Error(`feature cache ${file(name)}: ${bytes.length} bytes, expected ${n * per * 2} (delete ${root} to recompute)`);
        const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
        const dst = out[name].subarray(start * per, (start + n) * per);
        for (let i = 0; i < halves.length; i++) dst[i] = HALF_TABLE[halves[i]];
      }
    } else {
      const got = await compute(start, n);
      for (const name of names) {
        const per = perImage(spec.endPoints[name]);
        const v = got[name];
        if (!v || v.length !== n * per) throw new Error(`feature extraction: end point ${name} gave ${v?.length} values for ${n} images of [${spec.endPoints[name]}]`);
        const bytes = encodeHalf(v);
        writeFileAtomic(file(name), [bytes]);
        // What the cache will give next time (rounded to half), so a first run and a cached run agree.
        const halves = new Uint16Array(bytes.buffer);
        const dst = out[name].subarray(start * per, (start + n) * per);
        for (let i = 0; i < halves.length; i++) dst[i] = HALF_TABLE[halves[i]];
      }
    }
    onChunk?.(start + n, spec.count, !have);
  }
  return out;
}

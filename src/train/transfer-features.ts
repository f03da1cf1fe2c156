// Features of a frozen backbone for a list of images, through the disk cache (feature-cache.ts).
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { relative } from 'node:path';
import type { Model } from '../graph/model.ts';
import { readImage } from '../image/decode.ts';
import { type Preprocessing, preprocessImage } from '../image/preprocess.ts';
import { type Features, cachedFeatures } from './feature-cache.ts';

export interface FeatureRun {
  /** The backbone's Model (backboneFeatures) and what identifies its weights. */
  model: Model;
  weights: string;
  preprocessing: Preprocessing;
  endPoints: string[];
  cacheDir: string;
  /** Images per forward pass (default 8). */
  batch?: number;
  log?: (line: string) => void;
}

/** Runs `count` preprocessed images through the model in batches, end point by end point. */
async function runBatches(run: FeatureRun, image: (i: number) => Float32Array, start: number, n: number): Promise<Features> {
  const per = image(start).length;
  const batch = run.batch ?? 8;
  const out: Features = Object.fromEntries(run.endPoints.map((e) => [e, new Float32Array(n * sizeOf(run.model.shapeOf(e)))]));
  for (let s = 0; s < n; s += batch) {
    const b = Math.min(batch, n - s);
    const x = new Float32Array(b * per);
    for (let i = 0; i < b; i++) x.set(image(start + s + i), i * per);
    const y = await run.model.predict(x, { outputs: run.endPoints });
    for (const e of run.endPoints) out[e].set(y[e], s * sizeOf(run.model.shapeOf(e)));
  }
  return out;
}

const weightsIds = new Map<string, { bytes: number; sha256: string }>();

/**
 * What identifies the weights in a cache key: the file's size and SHA-256, not its path, so a cache
 * stays valid when the checkout moves (and a changed file under the same path is not mistaken for it).
 */
export function weightsIdentity(file: string): { bytes: number; sha256: string } {
  const st = statSync(file);
  const memo = `${file}\0${st.size}\0${st.mtimeMs}`;
  let id = weightsIds.get(memo);
  if (!id) {
    id = { bytes: st.size, sha256: createHash('sha256').update(readFileSync(file)).digest('hex') };
    weightsIds.set(memo, id);
  }
  return id;
}

const sizeOf = (shape: readonly number[]) => shape.slice(1).reduce((a, b) => a * b, 1);

function progress(run: FeatureRun, what: string): (done: number, count: number, computed: boolean) => void {
  const t0 = performance.now();
  let computed = 0;
  return (done, count, wasComputed) => {
    if (!wasComputed) return;
    computed = done;
    const s = (performance.now() - t0) / 1000;
    if (done === count || done % 256 < 32) run.log?.(`${what}: ${done}/${count} images (${(s / Math.max(1, computed)).toFixed(2)} s per image since start)`);
  };
}

/** Features of image files (decoded and preprocessed as the backbone expects). */
export async function fileFeatures(run: FeatureRun, files: string[], root: string): Promise<Features> {
  const identity = {
    weights: weightsIdentity(run.weights),
    preprocessing: run.preprocessing,
    files: files.map((f) => relative(root, f)),
  };
  const image = (i: number) => {
    try {
      return preprocessImage(readImage(files[i]), run.preprocessing);
    } catch (e) {
      throw new Error(`${files[i]}: ${(e as Error).message}`);
    }
  };
  return cachedFeatures(run.cacheDir, spec(run, identity, files.length), (s, n) => runBatches(run, image, s, n), progress(run, 'features'));
}

/** Features of in-memory RGB images (n x size x size x 3 uint8), upsampled to the backbone's input. */
export async function arrayFeatures(run: FeatureRun, images: Uint8Array, size: number, name: string): Promise<Features> {
  const count = images.length / (size * size * 3);
  const identity = { weights: weightsIdentity(run.weights), preprocessing: run.preprocessing, images: name, count };
  const image = (i: number) =>
    preprocessImage({ width: size, height: size, data: Float32Array.from(images.subarray(i * size * size * 3, (i + 1) * size * size * 3)) }, run.preprocessing);
  return cachedFeatures(run.cacheDir, spec(run, identity, count), (s, n) => runBatches(run, image, s, n), progress(run, name));
}

function spec(run: FeatureRun, identity: unknown, count: number) {
  const endPoints = Object.fromEntries(run.endPoints.map((e) => [e, [...run.model.shapeOf(e).slice(1)]]));
  return { identity, endPoints, count, chunk: 32 };
}

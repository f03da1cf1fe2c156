// TensorFlow.js weights: the `weightsManifest` of a model.json (groups of weight specs, each group
// stored as the concatenation of its shard files) read into float32 host arrays. Stored dtypes:
// float32, int32; quantized (`quantization`: {dtype, min, scale} or float16) uint8 / uint16 values
// decode as min + scale * q, float16 as IEEE half. Every size is checked against the manifest before
// any value is read, so a cut or swapped shard is an Error naming the file, never garbage weights.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface TfjsWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2 };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks one weight spec of the manifest; `where` names it in errors. */
function checkSpec(v: unknown, where: string): WeightSpec {
  if (!isRecord(v) || typeof v.name !== 'string') throw new Error(`${where} is not a weight spec ({name, shape, dtype})`);
  const at = `${where} ('${v.name}')`;
  if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) throw new Error(`${at}: shape ${JSON.stringify(v.shape)} is not a list of sizes`);
  if (typeof v.dtype !== 'string') throw new Error(`${at}: no dtype`);
  const q = v.quantization;
  if (q !== undefined) {
    if (!isRecord(q) || typeof q.dtype !== 'string') throw new Error(`${at}: quantization ${JSON.stringify(q)} has no dtype`);
    if (q.dtype === 'uint8' || q.dtype === 'uint16') {
      if (!Number.isFinite(q.min) || !Number.isFinite(q.scale)) throw new Error(`${at}: ${q.dtype} quantization needs a finite min and scale`);
    } else if (q.dtype !== 'float16') {
      throw new Error(`${at}: quantization dtype '${q.dtype}' is not supported (uint8, uint16, float16)`);
    }
  } else if (v.dtype !== 'float32' && v.dtype !== 'int32') {
    throw new Error(`${at}: dtype '${v.dtype}' is not supported (float32, int32, or quantized uint8 / uint16 / float16)`);
  }
  return v as unknown as WeightSpec;
}

/** IEEE 754 half -> number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Decodes one weight's bytes (little-endian, as TF.js writes them). */
function decodeWeight(spec: WeightSpec, bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  const q = spec.quantization;
  if (!q) {
    if (spec.dtype === 'float32') for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    else for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
  } else if (q.dtype === 'float16') {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  } else {
    const min = q.min!;
    const scale = q.scale!;
    if (q.dtype === 'uint8') for (let i = 0; i < count; i++) out[i] = min + scale * bytes[i];
    else for (let i = 0; i < count; i++) out[i] = min + scale * view.getUint16(i * 2, true);
  }
  return out;
}

/** The bytes of one manifest group: its shard files, in order, concatenated. */
function readGroup(dir: string, paths: unknown, where: string, manifestFile: string): { bytes: Uint8Array; shards: string[] } {
  if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string' && p.length > 0)) {
    throw new Error(`${manifestFile}: ${where}: 'paths' is not a list of shard file names`);
  }
  const shards = (paths as string[]).map((p) => join(dir, p));
  const parts: Uint8Array[] = [];
  for (const s of shards) {
    if (!existsSync(s) || !statSync(s).isFile()) throw new Error(`${s}: weight shard listed in ${basename(manifestFile)} is missing`);
    parts.push(readFileSync(s));
  }
  return { bytes: Buffer.concat(parts), shards };
}

/**
 * Reads every weight of a TF.js weightsManifest, the shards found next to `manifestFile`. Returns
 * the weights by manifest name ('conv2d_1/kernel'); throws naming the file for any inconsistency.
 */
export function readTfjsWeights(manifestFile: string, manifest: unknown): Map<string, TfjsWeight> {
  if (!Array.isArray(manifest)) throw new Error(`${manifestFile}: 'weightsManifest' is not a list of weight groups`);
  const dir = dirname(manifestFile);
  const out = new Map<string, TfjsWeight>();
  manifest.forEach((group, gi) => {
    const where = `weightsManifest[${gi}]`;
    if (!isRecord(group) || !Array.isArray(group.weights)) throw new Error(`${manifestFile}: ${where} has no 'weights' list`);
    const specs = group.weights.map((w, wi) => {
      try {
        return checkSpec(w, `${where}.weights[${wi}]`);
      } catch (e) {
        throw new Error(`${manifestFile}: ${(e as Error).message}`);
      }
    });
    const sizes = specs.map((s) => s.shape.reduce((a, b) => a * b, 1) * BYTES[s.quantization?.dtype ?? s.dtype]);
    const need = sizes.reduce((a, b) => a + b, 0);
    const { bytes, shards } = readGroup(dir, group.paths, where, manifestFile);
    if (bytes.length !== need) {
      const files = shards.map((s) => `${basename(s)} ${statSync(s).size}`).join(', ');
      throw new Error(
        `${shards.length === 1 ? shards[0] : manifestFile}: the manifest's ${specs.length} weights need ${need} bytes but the shard${shards.length > 1 ? 's' : ''} hold ${bytes.length} (${files}): a shard is cut, extended or from another model`,
      );
    }
    let offset = 0;
    specs.forEach((s, i) => {
      const count = s.shape.reduce((a, b) => a * b, 1);
      if (out.has(s.name)) throw new Error(`${manifestFile}: weight '${s.name}' is listed twice`);
      out.set(s.name, { name: s.name, shape: [...s.shape], data: decodeWeight(s, bytes.subarray(offset, offset + sizes[i]), count) });
      offset += sizes[i];
    });
  });
  return out;
}

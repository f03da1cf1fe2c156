// The host platform, Node side: where the engine's text assets come from, how the WebGPU entry
// point is obtained, and where warnings go. The browser build (scripts/build.mjs) swaps this module
// for host.browser.ts, which has the same exports; nothing else in src/gpu, src/kernels, src/graph,
// src/train or src/explain touches Node directly, so the same core runs on navigator.gpu.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { create, globals } from 'webgpu';

export const HOST = 'node' as const;

// Dawn's Node bindings expose GPUBufferUsage & co. only through `globals`; the engine reads them
// as globals, as a browser provides them.
Object.assign(globalThis, globals);
process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Dawn warns when it is unset

// The package root: this file is src/platform/host.ts in a clone, dist/platform/host.js when built.
const ROOT = new URL('../../', import.meta.url);
const assets = new Map<string, string>();

/**
 * A text asset by its path from the package root ('shaders/conv2d.wgsl', 'src/import/onnx.proto'),
 * read once. Missing assets raise an Error naming the path and where it was looked for.
 */
export function assetText(path: string): string {
  let text = assets.get(path);
  if (text === undefined) {
    try {
      text = readFileSync(new URL(path, ROOT), 'utf8');
    } catch (e) {
      throw new Error(`incept asset ${path}: cannot read ${new URL(path, ROOT).pathname} (${(e as Error).message})`);
    }
    assets.set(path, text);
  }
  return text;
}

/** The WebGPU entry point: Dawn, with flags from INCEPT_DAWN_FLAGS (space separated). */
export function acquireGpu(): GPU {
  return create((process.env.INCEPT_DAWN_FLAGS ?? '').split(' ').filter(Boolean));
}

/** A warning the user should see (device loss, uncaptured GPU errors). */
export function warn(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** The process's environment variables (settings such as INCEPT_GPU_TIMEOUT_S). */
export function hostEnv(): Record<string, string | undefined> {
  return process.env;
}

/** Whether little-endian typed arrays are the host's native order (all supported hosts are). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A file's bytes by path; an Error names the path and the reason. */
export function readFileBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new Error(`${path}: cannot read (${why})`);
  }
}

/** The kernel tuning cache on disk (src/platform/tuning-file.ts). */
export { type TuningEntry, mergeTuningEntries, readTuningEntries, tuningCachePath } from './tuning-file.ts';

/** 8-bit RGBA pixels (row-major) as PNG file bytes. */
export function encodeRgbaPng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  const png = new PNG({ width, height });
  png.data.set(rgba.subarray(0, width * height * 4));
  return PNG.sync.write(png);
}

/** The hex SHA-256 of the concatenated parts (safetensors data checksums). */
export function sha256Hex(parts: Iterable<Uint8Array>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

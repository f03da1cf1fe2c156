// The loader's per-sample work: read + decode an image file, then train augmentation or eval
// preprocessing. prepareSample() is the single implementation used both on the calling thread
// (workers: 0) and inside the worker threads, so both paths give identical bytes for a seed.
//
// As a worker (started by loader.ts through decode_worker_boot.mjs, workerData.role set), it
// answers {id, path, seed} messages with {id, data} (the Float32Array's buffer transferred) or
// {id, error}.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { readImage } from '../image/decode.ts';
import { preprocessForEval } from '../image/preprocess.ts';
import { type AugmentOptions, augmentForTrain } from './augment.ts';

export interface SampleSpec {
  /** Output [height, width]. */
  size: [number, number];
  mode: 'train' | 'eval';
  augment: AugmentOptions;
  /** Eval: tf.image.central_crop's fraction (default 0.875). */
  centralFraction?: number;
}

export interface Task {
  id: number;
  path: string;
  seed: number;
}

export type Reply = { id: number; data: Float32Array } | { id: number; error: string };

export const WORKER_ROLE = 'incept-decode-worker';

/** One sample, height x width x 3 floats in [-1, 1]. Errors name the file. */
export function prepareSample(path: string, seed: number, spec: SampleSpec): Float32Array {
  const image = readImage(path); // its errors name the file
  try {
    return spec.mode === 'train'
      ? augmentForTrain(image, spec.size, seed, spec.augment)
      : preprocessForEval(image, spec.size, { centralFraction: spec.centralFraction });
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

if (!isMainThread && parentPort && workerData?.role === WORKER_ROLE) {
  const port = parentPort;
  const spec = workerData.spec as SampleSpec;
  port.on('message', (task: Task) => {
    let reply: Reply;
    try {
      const data = prepareSample(task.path, task.seed, spec);
      port.postMessage({ id: task.id, data } satisfies Reply, [data.buffer as ArrayBuffer]);
      return;
    } catch (e) {
      reply = { id: task.id, error: (e as Error).message };
    }
    port.postMessage(reply);
  });
}

// TensorFlow.js's WebGPU backend as a peer, on the same Dawn adapter as incept (its own device).
// In Node, tfjs-backend-webgpu registers itself only when navigator.gpu exists, so this module
// provides one from the `webgpu` package before importing it.
import { create, globals } from 'webgpu';
import { type TimingMethod, median, sample } from '../src/gpu/timing.ts';

type Tf = typeof import('@tensorflow/tfjs-core');
export type TfTensor = import('@tensorflow/tfjs-core').Tensor;

export interface TfPeer {
  tf: Tf;
  name: string;
  method: TimingMethod;
  /**
   * Median ms of the GPU work `op` issues (after `warmup` runs); the tensor it returns is disposed.
   * On the wall clock, `repeat` runs are submitted together and awaited once (ms is per run), the
   * same amortisation of submit latency that incept's repeated pass gets.
   */
  time(op: () => TfTensor, opts?: { warmup?: number; runs?: number; budgetMs?: number; wallClock?: boolean; repeat?: number }): Promise<number>;
}

/** What the backend exposes that the wall-clock path needs (not part of tfjs's typed API). */
interface WebGpuBackendInternals {
  device: GPUDevice;
  supportTimestampQuery: boolean;
  commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

let peer: Promise<TfPeer> | null = null;

/** Loads tfjs-core + tfjs-backend-webgpu once and selects the 'webgpu' backend. */
export function loadTfjs(): Promise<TfPeer> {
  peer ??= load();
  return peer;
}

async function load(): Promise<TfPeer> {
  Object.assign(globalThis, globals);
  // Full-resolution timestamps (Dawn otherwise rounds them to 65.5 us), so tfjs's per-kernel
  // tf.time() figures can be trusted for short kernels.
  const gpu = create(['disable-dawn-features=timestamp_quantization']);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs: the webgpu backend failed to initialise');
  await tf.ready();
  const backend = tf.backend() as unknown as WebGpuBackendInternals;
  const version = (tf.version_core as string | undefined) ?? '';
  const method: TimingMethod = backend.supportTimestampQuery ? 'gpu-timestamp' : 'wall-clock';

  /** GPU time of every kernel the op dispatches, from tfjs's own timestamp queries. */
  async function kernelMs(op: () => TfTensor): Promise<number> {
    let out: TfTensor | null = null;
    const info = await tf.time(() => {
      out = op();
    });
    (out as TfTensor | null)?.dispose();
    const ms = info.kernelMs;
    if (typeof ms !== 'number') throw new Error(`tfjs: no kernel time (${JSON.stringify(ms)})`);
    return ms;
  }

  /** Submit to completion, as incept's wall-clock path measures it (no readback). */
  async function wallMs(op: () => TfTensor, repeat: number): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < repeat; i++) op().dispose(); // tfjs defers the buffer's release past the submit
    if (backend.commandEncoder) {
      backend.endComputePassEncoder();
      backend.submitQueue();
    }
    await backend.device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / repeat;
  }

  return {
    tf,
    name: `tfjs-webgpu ${version}`.trim(),
    method,
    async time(op, opts = {}) {
      const repeat = Math.max(1, Math.floor(opts.repeat ?? 1));
      const once = method === 'gpu-timestamp' && !opts.wallClock ? () => kernelMs(op) : () => wallMs(op, repeat);
      return median(await sample(once, opts));
    },
  };
}

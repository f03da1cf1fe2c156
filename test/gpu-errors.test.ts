// GPU failures end in one clear GpuError from the operation that waits on them: validation errors
// inside error scopes, errors outside every scope (uncaptured), a lost device, and a queue that
// never completes (every wait has a timeout). The buffer pool's free lists are bounded.
import { afterAll, describe, expect, it } from 'vitest';
import { BufferPool } from '../src/gpu/pool.ts';
import { Params, run } from '../src/gpu/recorder.ts';
import { GpuError, Runtime, closeRuntime, getRuntime, gpuTimeoutMs, requestAdapter } from '../src/gpu/runtime.ts';
import { empty, upload } from '../src/gpu/tensor.ts';

afterAll(closeRuntime);

/** A second runtime on its own device, which a test may break without harming the shared one. */
async function spareRuntime(): Promise<Runtime> {
  const { gpu, adapter } = await requestAdapter();
  if (!adapter) throw new Error('no adapter');
  return new Runtime(gpu, adapter, await adapter.requestDevice({ label: 'spare' }));
}

/** Collects unhandled rejections while `fn` runs and a little after. */
async function unhandledDuring(fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', onRejection);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    process.off('unhandledRejection', onRejection);
  }
  return seen;
}

const quietStderr = async <T>(fn: () => Promise<T>): Promise<T> => {
  const write = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await fn();
  } finally {
    process.stderr.write = write;
  }
};

describe('GPU errors', () => {
  it('an error scope that caught an error never becomes an unhandled rejection; sync() raises it', async () => {
    const rt = await getRuntime();
    const x = upload(rt, [1, 2, 3, 4], [4]);
    const y = empty(rt, [4]);
    const seen = await unhandledDuring(async () => {
      run(rt, [{
        label: 'relu [4] (deliberately mis-bound)',
        pipeline: { shader: 'unary', constants: { OP: 0 } },
        params: new Params().u32(4).f32(0, 0).build(),
        buffers: [{ buffer: x.buffer, offset: 0, size: x.buffer.size + 4096 }, y.binding],
        workgroups: [1, 1, 1],
      }]);
      // The scope settles while nobody awaits it.
      await rt.device.queue.onSubmittedWorkDone();
    });
    expect(seen).toEqual([]);
    await expect(rt.sync()).rejects.toThrow(/^relu \[4\] \(deliberately mis-bound\): /);
    await rt.sync(); // reported once, then the runtime is clean again
  });

  it('an uncaptured GPU error (outside every error scope) fails the next sync, not only stderr', async () => {
    const rt = await getRuntime();
    const err = await quietStderr(async () => {
      rt.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE, label: 'bad usage' });
      return rt.sync().then(() => null, (e: unknown) => e);
    });
    expect(err).toBeInstanceOf(GpuError);
    expect((err as Error).message).toMatch(/^uncaptured GPU error: .*MapRead/s);
    expect(Array.from(await upload(rt, [7], [1]).read())).toEqual([7]);
  });

  it('a queue that never completes ends in a timeout error naming the wait', async () => {
    const rt = await spareRuntime();
    try {
      rt.waitTimeoutMs = 100;
      Object.defineProperty(rt.device.queue, 'onSubmittedWorkDone', { value: () => new Promise(() => {}) });
      await expect(rt.sync()).rejects.toThrow(/^waiting for the GPU queue: the GPU did not finish within 0\.1 s \(INCEPT_GPU_TIMEOUT_S\)/);
      await expect(rt.wait(new Promise(() => {}), 'read [2,3]')).rejects.toThrow(/^read \[2,3\]: the GPU did not finish within 0\.1 s/);
      expect(await rt.wait(Promise.resolve(5), 'a quick one')).toBe(5);
    } finally {
      rt.destroy();
    }
  });

  it('device loss: waits in progress and every later operation get one clear error', async () => {
    const rt = await spareRuntime();
    const pending = rt.wait(new Promise(() => {}), 'read [8]');
    const outcome = pending.then(() => null, (e: unknown) => e);
    await quietStderr(async () => {
      rt.device.destroy(); // not rt.destroy(): to the runtime this is a loss it did not ask for
      await rt.device.lost;
      await new Promise((r) => setTimeout(r, 10));
    });
    const err = await outcome;
    expect(err).toBeInstanceOf(GpuError);
    expect((err as Error).message).toBe('read [8]: GPU device lost (device was destroyed); restart the process');
    await expect(rt.sync()).rejects.toThrow(/^GPU device lost \(device was destroyed\); restart the process$/);
    expect(() => rt.scoped('conv', () => {})).toThrow(/GPU device lost/);
  });

  it('the wait timeout comes from INCEPT_GPU_TIMEOUT_S (seconds), default 30 minutes', () => {
    expect(gpuTimeoutMs({})).toBe(1_800_000);
    expect(gpuTimeoutMs({ INCEPT_GPU_TIMEOUT_S: '2.5' })).toBe(2500);
    expect(() => gpuTimeoutMs({ INCEPT_GPU_TIMEOUT_S: 'never' })).toThrow(/INCEPT_GPU_TIMEOUT_S must be a positive number of seconds, got 'never'/);
  });
});

describe('BufferPool free lists are bounded', () => {
  it('keeps at most maxFreePerSize buffers of a size and maxFreeBytes in all; the rest are destroyed', async () => {
    const rt = await getRuntime();
    const pool = new BufferPool(rt.device, { maxFreeBytes: 4096, maxFreePerSize: 2 });
    const small = Array.from({ length: 5 }, () => pool.acquire(1024)); // size class 1024
    expect(pool.allocatedBytes).toBe(5 * 1024);
    for (const b of small) pool.release(b);
    expect(pool.freeBytes).toBe(2 * 1024); // two kept, three destroyed
    expect(pool.allocatedBytes).toBe(2 * 1024);
    const big = [pool.acquire(2048), pool.acquire(2048)];
    for (const b of big) pool.release(b);
    expect(pool.freeBytes).toBe(4096); // one 2048 fits under 4096 bytes, the second does not
    expect(pool.allocatedBytes).toBe(4096);
    // Reuse takes from the lists first.
    pool.acquire(1000);
    expect([pool.freeBytes, pool.allocatedBytes]).toEqual([3072, 4096]);
    pool.clear();
    expect([pool.freeBytes, pool.allocatedBytes]).toEqual([0, 0]);
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { Params, run } from '../src/gpu/recorder.ts';
import { GpuError, closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { empty, upload } from '../src/gpu/tensor.ts';

afterAll(closeRuntime);

describe('runtime', () => {
  it('requests the optional features the adapter has and its full limits', async () => {
    const rt = await getRuntime();
    for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) {
      expect(rt.features.has(f)).toBe(rt.adapter.features.has(f));
    }
    expect(rt.limits.maxStorageBufferBindingSize).toBe(rt.adapter.limits.maxStorageBufferBindingSize);
    expect(rt.limits.maxBufferSize).toBe(rt.adapter.limits.maxBufferSize);
    expect(rt.limits.maxComputeWorkgroupStorageSize).toBe(rt.adapter.limits.maxComputeWorkgroupStorageSize);
  });

  it('a GPU validation error surfaces as a GpuError naming the op and its shapes', async () => {
    const rt = await getRuntime();
    const x = upload(rt, [1, 2, 3, 4], [4]);
    const y = empty(rt, [4]);
    // Bind 4 KiB past the end of x: Dawn rejects the bind group; the error must name our label.
    run(rt, [{
      label: 'relu [4] (deliberately mis-bound)',
      pipeline: { shader: 'unary', constants: { OP: 0 } },
      params: new Params().u32(4).f32(0, 0).build(),
      buffers: [{ buffer: x.buffer, offset: 0, size: x.buffer.size + 4096 }, y.binding],
      workgroups: [1, 1, 1],
    }]);
    const err = await rt.sync().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(GpuError);
    expect(String((err as Error).message)).toMatch(/^relu \[4\] \(deliberately mis-bound\): /);
    // The runtime stays usable after a reported error.
    expect(Array.from(await upload(rt, [5], [1]).read())).toEqual([5]);
  });

  it('uploads refuse data that does not fill the shape, naming the tensor', async () => {
    const rt = await getRuntime();
    expect(() => upload(rt, [1, 2, 3], [2, 2], 'weights')).toThrow(/upload weights: 3 values do not fill shape \[2,2\]/);
  });
});

// Encoding of compute dispatches. A kernel describes a dispatch (pipeline, buffers, params,
// workgroup grid); `prepare` turns it into GPU objects once, so a compiled plan can replay its
// dispatches in one compute pass and one submit with no per-run allocation.
import type { PipelineSpec } from './pipelines.ts';
import type { Runtime } from './runtime.ts';
import { type UniformKind, checkUniforms, recordPacking } from './uniforms.ts';

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export interface Dispatch {
  label: string; // op name and shapes, used in error messages
  pipeline: PipelineSpec;
  /** Uniform parameters at @binding(0); storage buffers follow at @binding(1..n). */
  params: ArrayBuffer;
  buffers: Binding[];
  workgroups: [number, number, number];
}

export interface PreparedDispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
  uniform: GPUBuffer;
}

/**
 * Packs uniform parameters: each value takes one 4-byte slot, in the order of the shader's struct;
 * prepare() checks what was packed against that struct (uniforms.ts).
 */
export class Params {
  private values: { kind: 'u32' | 'i32' | 'f32'; v: number }[] = [];
  u32(...v: number[]): this {
    for (const x of v) this.values.push({ kind: 'u32', v: x });
    return this;
  }
  i32(...v: number[]): this {
    for (const x of v) this.values.push({ kind: 'i32', v: x });
    return this;
  }
  f32(...v: number[]): this {
    for (const x of v) this.values.push({ kind: 'f32', v: x });
    return this;
  }
  build(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.values.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const dv = new DataView(buf);
    this.values.forEach(({ kind, v }, i) => {
      if (kind === 'u32') dv.setUint32(i * 4, v >>> 0, true);
      else if (kind === 'i32') dv.setInt32(i * 4, v | 0, true);
      else dv.setFloat32(i * 4, v, true);
    });
    recordPacking(buf, this.values.map((x): UniformKind => x.kind));
    return buf;
  }
}

export function prepare(rt: Runtime, d: Dispatch): PreparedDispatch {
  const device = rt.device;
  checkUniforms(d.pipeline, d.params, d.label);
  const pipeline = rt.pipelines.get(d.pipeline);
  const uniform = device.createBuffer({
    size: d.params.byteLength,
    usage: GPUBufferUsage.UNIFORM,
    mappedAtCreation: true,
    label: `${d.label} params`,
  });
  new Uint8Array(uniform.getMappedRange()).set(new Uint8Array(d.params));
  uniform.unmap();
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform } }];
  d.buffers.forEach((b, i) => {
    entries.push({ binding: i + 1, resource: 'buffer' in b ? b : { buffer: b } });
  });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label: d.label });
  return { label: d.label, pipeline, bindGroup, workgroups: d.workgroups, uniform };
}

/** Records prepared dispatches into one compute pass (Dawn inserts the barriers between them). */
export function encodePass(
  enc: GPUCommandEncoder,
  dispatches: PreparedDispatch[],
  timestampWrites?: GPUComputePassTimestampWrites,
): void {
  const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : {});
  for (const d of dispatches) {
    if (d.workgroups[0] * d.workgroups[1] * d.workgroups[2] === 0) continue;
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(...d.workgroups);
  }
  pass.end();
}

/** Runs dispatches now: one pass, one submit, inside error scopes naming the ops. */
export function run(rt: Runtime, dispatches: Dispatch[]): void {
  const label = dispatches.map((d) => d.label).join('; ');
  rt.scoped(label, () => {
    const prepared = dispatches.map((d) => prepare(rt, d));
    const enc = rt.device.createCommandEncoder({ label });
    encodePass(enc, prepared);
    rt.device.queue.submit([enc.finish()]);
    for (const p of prepared) p.uniform.destroy();
  });
}

/** Splits a 1-D count of workgroups over x and y so neither exceeds the device limit. */
export function grid(rt: Runtime, groups: number): [number, number, number] {
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y, 1];
}

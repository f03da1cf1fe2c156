// A tensor is a GPU buffer plus a shape and a dtype. Activations are NHWC, conv filters HWIO.
import { GpuError, type Runtime } from './runtime.ts';

export type DType = 'float32' | 'int32';
export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export class Tensor {
  private disposed = false;

  constructor(
    readonly rt: Runtime,
    readonly buffer: GPUBuffer,
    readonly shape: Shape,
    readonly dtype: DType = 'float32',
    /** Pooled tensors return their buffer to the pool on dispose. */
    private readonly pooled = true,
    /** Where the tensor starts in `buffer` (a planned arena holds many tensors). */
    readonly byteOffset = 0,
  ) {}

  /** The bytes of this tensor as a bind-group resource. */
  get binding(): { buffer: GPUBuffer; offset: number; size: number } {
    return { buffer: this.buffer, offset: this.byteOffset, size: Math.max(4, this.bytes) };
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get bytes(): number {
    return this.size * 4;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A tensor sharing this buffer with another shape of the same size (reshape costs nothing). */
  reshape(shape: Shape): Tensor {
    if (sizeOf(shape) !== this.size) {
      throw new GpuError(`reshape: cannot view ${shapeString(this.shape)} as ${shapeString(shape)}`);
    }
    return new Tensor(this.rt, this.buffer, [...shape], this.dtype, false, this.byteOffset);
  }

  /** Copies the tensor back to the CPU; raises any GPU error the work that produced it caused. */
  async read(): Promise<Float32Array> {
    if (this.dtype !== 'float32') throw new GpuError(`read: tensor is ${this.dtype}; use readInt32`);
    return new Float32Array(await this.readBytes());
  }

  async readInt32(): Promise<Int32Array> {
    return new Int32Array(await this.readBytes());
  }

  private async readBytes(): Promise<ArrayBuffer> {
    if (this.disposed) throw new GpuError('read: tensor was disposed');
    const device = this.rt.device;
    const bytes = this.bytes;
    const staging = device.createBuffer({
      size: Math.max(4, bytes),
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    });
    const enc = device.createCommandEncoder();
    if (bytes > 0) enc.copyBufferToBuffer(this.buffer, this.byteOffset, staging, 0, bytes);
    device.queue.submit([enc.finish()]);
    await this.rt.sync();
    await this.rt.wait(staging.mapAsync(GPUMapMode.READ), `read ${shapeString(this.shape)}`);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.pooled) this.rt.pool.release(this.buffer);
  }
}

/** A new, uninitialised tensor from the pool. */
export function empty(rt: Runtime, shape: Shape, dtype: DType = 'float32', label = 'tensor'): Tensor {
  const bytes = sizeOf(shape) * 4;
  rt.checkBindingSize(bytes, `${label} ${shapeString(shape)}`);
  return new Tensor(rt, rt.pool.acquire(bytes, label), [...shape], dtype);
}

/** Uploads host data (float32 unless Int32Array is given). */
export function upload(
  rt: Runtime,
  data: ArrayLike<number> | Float32Array | Int32Array,
  shape: Shape,
  label = 'tensor',
): Tensor {
  const n = sizeOf(shape);
  if (data.length !== n) {
    throw new GpuError(`upload ${label}: ${data.length} values do not fill shape ${shapeString(shape)} (${n})`);
  }
  const dtype: DType = data instanceof Int32Array ? 'int32' : 'float32';
  const t = empty(rt, shape, dtype, label);
  const arr = data instanceof Int32Array || data instanceof Float32Array ? data : Float32Array.from(data);
  if (n > 0) rt.device.queue.writeBuffer(t.buffer, 0, arr.buffer, arr.byteOffset, n * 4);
  return t;
}

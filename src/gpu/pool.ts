// A pool of storage buffers, bucketed by size class, so eager ops and repeated plans do not
// allocate (and zero) fresh GPU memory on every call.
const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Size classes: multiples of 256 bytes up to 64 KiB, then 1/8-octave steps, so waste stays under 12.5%. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 65536) return b;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

export interface PoolLimits {
  /** Bytes the free lists may hold in all (default 512 MiB); a release past it destroys the buffer. */
  maxFreeBytes?: number;
  /** Buffers one size class may hold (default 32). */
  maxFreePerSize?: number;
}

/**
 * Freed buffers wait in per-size free lists for reuse. The lists are bounded: a workload whose
 * shapes keep changing would otherwise keep every size it ever used alive. Past a bound a released
 * buffer is destroyed (WebGPU frees it once the work already submitted with it has finished).
 */
export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  /** Bytes of every live buffer the pool created: in use by tensors plus waiting in the free lists. */
  allocatedBytes = 0;
  /** Bytes waiting in the free lists. */
  freeBytes = 0;
  readonly maxFreeBytes: number;
  readonly maxFreePerSize: number;

  constructor(
    private readonly device: GPUDevice,
    limits: PoolLimits = {},
  ) {
    this.maxFreeBytes = limits.maxFreeBytes ?? 512 * 2 ** 20;
    this.maxFreePerSize = limits.maxFreePerSize ?? 32;
  }

  acquire(bytes: number, label = 'tensor'): GPUBuffer {
    const size = sizeClass(bytes);
    const reused = this.free.get(size)?.pop();
    if (reused) {
      this.freeBytes -= size;
      return reused;
    }
    this.allocatedBytes += size;
    return this.device.createBuffer({ size, usage: STORAGE(), label });
  }

  release(buffer: GPUBuffer): void {
    const list = this.free.get(buffer.size) ?? [];
    if (list.length >= this.maxFreePerSize || this.freeBytes + buffer.size > this.maxFreeBytes) {
      this.allocatedBytes -= buffer.size;
      buffer.destroy();
      return;
    }
    list.push(buffer);
    this.free.set(buffer.size, list);
    this.freeBytes += buffer.size;
  }

  clear(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.allocatedBytes = 0;
    this.freeBytes = 0;
  }
}

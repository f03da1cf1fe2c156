// The WebGPU runtime: one adapter and device per process, with the adapter's full limits,
// the optional features the engine uses, error scopes that name the op, and device-loss reporting.
// The GPU comes from the host platform: Dawn in Node, navigator.gpu in a browser.
import { acquireGpu, warn } from '../platform/host.ts';
import { PipelineCache } from './pipelines.ts';
import { BufferPool } from './pool.ts';

export const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

/** An error raised by the GPU (validation, out of memory, device loss), naming the op that caused it. */
export class GpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuError';
  }
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isFallbackAdapter: boolean;
}

export class Runtime {
  readonly pipelines: PipelineCache;
  readonly pool: BufferPool;
  readonly features: Set<string>;
  readonly limits: GPUSupportedLimits;
  private lostReason: string | null = null;
  private pendingErrors: Promise<void>[] = [];

  constructor(
    readonly gpu: GPU,
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
  ) {
    this.features = new Set([...device.features] as string[]);
    this.limits = device.limits;
    this.pipelines = new PipelineCache(device);
    this.pool = new BufferPool(device);
    device.lost.then((info) => {
      if (info.reason === 'destroyed') return;
      this.lostReason = info.message || String(info.reason);
      warn(`incept: GPU device lost: ${this.lostReason}`);
    });
    device.addEventListener('uncapturederror', (ev: Event) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      warn(`incept: uncaptured GPU error: ${err.message}`);
    });
  }

  get adapterInfo(): AdapterDescription {
    const info = this.adapter.info;
    return {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      backend: (info as unknown as { backendType?: string }).backendType ?? 'unknown',
      isFallbackAdapter: (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    };
  }

  /** One line naming the adapter, e.g. for bench JSON. */
  get adapterName(): string {
    const i = this.adapterInfo;
    return [i.vendor, i.device || i.description, i.architecture].filter(Boolean).join(' / ') || 'unknown adapter';
  }

  private dummy: GPUBuffer | null = null;

  /** A small storage buffer bound where a shader declares an optional input that is absent. */
  get dummyBuffer(): GPUBuffer {
    this.dummy ??= this.device.createBuffer({
      size: 256,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      label: 'unused optional input',
    });
    return this.dummy;
  }

  /** Lanes per subgroup when the adapter has subgroups of one fixed size, else 1 (no subgroups). */
  get subgroupSize(): number {
    if (!this.features.has('subgroups')) return 1;
    const info = this.adapter.info as unknown as { subgroupMinSize?: number; subgroupMaxSize?: number };
    const min = info.subgroupMinSize ?? 0;
    const max = info.subgroupMaxSize ?? 0;
    return min > 0 && min === max && min <= 64 ? min : 1;
  }

  get hasTimestamps(): boolean {
    return this.features.has('timestamp-query');
  }

  assertAlive(): void {
    if (this.lostReason !== null) throw new GpuError(`GPU device lost (${this.lostReason}); restart the process`);
  }

  /** Checks a buffer size against the device's limits before Dawn sees it. */
  checkBindingSize(bytes: number, what: string): void {
    const max = this.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      throw new GpuError(
        `${what}: ${bytes} bytes exceeds the device's maxStorageBufferBindingSize of ${max} bytes`,
      );
    }
  }

  /**
   * Runs `fn` (which encodes and submits GPU work) inside validation and out-of-memory error scopes.
   * Popping the scopes is asynchronous; the result is collected and raised by the next `sync()`,
   * so ops can be queued without waiting on each other.
   */
  scoped(label: string, fn: () => void): void {
    this.assertAlive();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    try {
      fn();
    } finally {
      const validation = this.device.popErrorScope();
      const oom = this.device.popErrorScope();
      this.pendingErrors.push(
        Promise.all([validation, oom]).then(([v, o]) => {
          const err = v ?? o;
          if (err) throw new GpuError(`${label}: ${err.message.trim()}`);
        }),
      );
    }
  }

  /** Waits for all submitted work and raises the first GPU error any of it caused. */
  async sync(): Promise<void> {
    this.assertAlive();
    const pending = this.pendingErrors;
    this.pendingErrors = [];
    await this.device.queue.onSubmittedWorkDone();
    const results = await Promise.allSettled(pending);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
    this.assertAlive();
  }

  destroy(): void {
    this.pool.clear();
    this.device.destroy();
  }
}

let runtimePromise: Promise<Runtime> | null = null;

/** The process-wide runtime, created on first use. */
export function getRuntime(): Promise<Runtime> {
  runtimePromise ??= createRuntime();
  return runtimePromise;
}

/** Destroys the process-wide runtime so the process can exit. */
export async function closeRuntime(): Promise<void> {
  if (!runtimePromise) return;
  const rt = await runtimePromise.catch(() => null);
  runtimePromise = null;
  rt?.destroy();
}

export async function requestAdapter(): Promise<{ gpu: GPU; adapter: GPUAdapter | null }> {
  const gpu = acquireGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  return { gpu, adapter };
}

async function createRuntime(): Promise<Runtime> {
  const { gpu, adapter } = await requestAdapter();
  if (!adapter) {
    throw new GpuError(
      'no WebGPU adapter found. Without a GPU, install a CPU Vulkan driver: Mesa lavapipe >= 23 ' +
        "(on Debian bookworm: 'node scripts/setup.mjs' installs mesa-vulkan-drivers from bookworm-backports)",
    );
  }
  // Ask for everything the adapter offers: big storage bindings, big buffers, all workgroup storage.
  const wanted = [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxComputeWorkgroupSizeZ',
    'maxComputeWorkgroupsPerDimension',
    'maxStorageBuffersPerShaderStage',
    'maxBindGroups',
  ] as const;
  const requiredLimits: Record<string, number> = {};
  for (const name of wanted) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'incept' });
  return new Runtime(gpu, adapter, device);
}

// The WebGPU runtime: one adapter and device per process, with the adapter's full limits,
// the optional features the engine uses, error scopes that name the op, and device-loss reporting.
// The GPU comes from the host platform: Dawn in Node, navigator.gpu in a browser.
import { acquireGpu, hostEnv, warn } from '../platform/host.ts';
import { PipelineCache } from './pipelines.ts';
import { BufferPool } from './pool.ts';

export const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

/** The limits a device is asked for at the adapter's own maximum (big bindings, buffers, workgroup storage). */
export const REQUESTED_LIMITS = [
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

/**
 * How long one wait on the GPU (queue completion, a buffer mapping) may take before it is an error:
 * INCEPT_GPU_TIMEOUT_S seconds, default 30 minutes. Long enough for the slowest single submission
 * measured on lavapipe (a whole-network training step at batch 32 under load, about 2 minutes), short
 * enough that a hung device or driver ends in an error rather than a process waiting forever.
 */
export function gpuTimeoutMs(env: Record<string, string | undefined> = hostEnv()): number {
  const v = env.INCEPT_GPU_TIMEOUT_S;
  if (v === undefined || v === '') return 30 * 60 * 1000;
  const s = Number(v);
  if (!(s > 0)) throw new GpuError(`INCEPT_GPU_TIMEOUT_S must be a positive number of seconds, got '${v}'`);
  return s * 1000;
}

/** GPU errors kept for the next sync(); further ones are counted, not kept. */
const MAX_KEPT_ERRORS = 8;

export class Runtime {
  readonly pipelines: PipelineCache;
  readonly pool: BufferPool;
  readonly features: Set<string>;
  readonly limits: GPUSupportedLimits;
  /** Milliseconds one wait on the GPU may take (see gpuTimeoutMs). */
  waitTimeoutMs = gpuTimeoutMs();
  private lostReason: string | null = null;
  private destroying = false;
  /** Error-scope pops not yet settled; each settles to nothing (errors land in `errors`), never rejects. */
  private scopesInFlight = new Set<Promise<void>>();
  /** GPU errors (from error scopes or uncaptured) that the next sync() raises. */
  private errors: GpuError[] = [];
  private droppedErrors = 0;
  /** Rejecters of the waits in progress, so a device loss ends them at once. */
  private waiters = new Set<(e: GpuError) => void>();

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
      if (this.destroying) return; // our own destroy(), not a loss
      this.lostReason = info.message || String(info.reason);
      warn(`incept: GPU device lost: ${this.lostReason}`);
      for (const reject of [...this.waiters]) reject(this.lostError());
    });
    device.addEventListener('uncapturederror', (ev: Event) => {
      // An error outside every error scope: it fails the next sync() (printed too, in case none comes).
      const err = (ev as GPUUncapturedErrorEvent).error;
      warn(`incept: uncaptured GPU error: ${err.message}`);
      this.keepError(new GpuError(`uncaptured GPU error: ${err.message.trim()}`));
    });
  }

  private lostError(what?: string): GpuError {
    return new GpuError(`${what ? `${what}: ` : ''}GPU device lost (${this.lostReason}); restart the process`);
  }

  private keepError(e: GpuError): void {
    if (this.errors.length < MAX_KEPT_ERRORS) this.errors.push(e);
    else this.droppedErrors++;
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

  private readonly absents: GPUBuffer[] = [];

  /**
   * The one way to bind an absent buffer: a small storage buffer bound where a shader declares a
   * binding the dispatch does not use (its override flag is off, so it is never read or written).
   * absent() / absent(0) for absent inputs (read-only; may fill several bindings of one dispatch);
   * absent(1), absent(2), ... for absent outputs, one index per binding: WebGPU refuses two
   * writable bindings of one buffer range in a dispatch.
   */
  absent(i = 0): GPUBuffer {
    while (this.absents.length <= i) {
      this.absents.push(
        this.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: `absent binding ${this.absents.length}` }),
      );
    }
    return this.absents[i];
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
    if (this.lostReason !== null) throw this.lostError();
  }

  /**
   * Awaits a GPU promise (queue completion, mapAsync) with a timeout, ending it with one GpuError
   * naming `what` when the time runs out or the device is lost meanwhile.
   */
  wait<T>(promise: Promise<T>, what: string): Promise<T> {
    this.assertAlive();
    return new Promise<T>((resolve, reject) => {
      const fail = (e: unknown) => {
        clearTimeout(timer);
        this.waiters.delete(fail);
        reject(this.lostReason !== null ? this.lostError(what) : e);
      };
      const timer = setTimeout(() => {
        fail(new GpuError(`${what}: the GPU did not finish within ${this.waitTimeoutMs / 1000} s (INCEPT_GPU_TIMEOUT_S); the device or its driver may be hung`));
      }, this.waitTimeoutMs);
      this.waiters.add(fail);
      promise.then((v) => {
        clearTimeout(timer);
        this.waiters.delete(fail);
        resolve(v);
      }, fail);
    });
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
   * so ops can be queued without waiting on each other. The popped promise never rejects (an
   * error is kept for sync()), so no unhandled rejection can come from it.
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
      const settled: Promise<void> = Promise.all([validation, oom])
        .then(
          ([v, o]) => {
            const err = v ?? o;
            if (err) this.keepError(new GpuError(`${label}: ${err.message.trim()}`));
          },
          (e: unknown) => this.keepError(new GpuError(`${label}: reading the GPU error scope failed (${e instanceof Error ? e.message : String(e)})`)),
        )
        .finally(() => this.scopesInFlight.delete(settled));
      this.scopesInFlight.add(settled);
    }
  }

  /** Waits for all submitted work and raises the first GPU error any of it caused (or an uncaptured one). */
  async sync(): Promise<void> {
    this.assertAlive();
    await this.wait(this.device.queue.onSubmittedWorkDone(), 'waiting for the GPU queue');
    await this.wait(Promise.all([...this.scopesInFlight]), 'reading GPU error scopes');
    this.assertAlive();
    if (this.errors.length > 0) {
      const [first] = this.errors;
      const more = this.errors.length - 1 + this.droppedErrors;
      this.errors = [];
      this.droppedErrors = 0;
      if (more > 0) first.message += ` (and ${more} more GPU error${more > 1 ? 's' : ''})`;
      throw first;
    }
  }

  destroy(): void {
    this.destroying = true;
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
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'incept' });
  return new Runtime(gpu, adapter, device);
}

// What a GPU offers the kernels, for the GPU check (scripts/gpu-check.sh, `incept info --adapters`):
// the adapter's description, every feature, every limit, the subgroup sizes, and the subgroup-matrix
// (cooperative matrix) configurations where Dawn exposes them. Node only (Dawn's `webgpu` package).
//
// Dawn hides its experimental features (chromium-experimental-subgroup-matrix among them) unless the
// instance allows unsafe APIs, so the adapter is asked twice: as incept asks for it (the same
// INCEPT_DAWN_FLAGS, high-performance), and again with allow_unsafe_apis to list what an
// experimental kernel could use. Where subgroup matrices are offered, a device is requested with
// them to show that the feature really enables.
import { create } from 'webgpu';
import { REQUESTED_LIMITS } from './runtime.ts';

export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';
const UNSAFE_FLAG = 'enable-dawn-features=allow_unsafe_apis';

/** One subgroup-matrix shape: M x K (left) times K x N (right), component and result types. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface AdapterView {
  /** The Dawn instance flags the adapter was requested with. */
  flags: string[];
  info: Record<string, string | number | boolean>;
  features: string[];
  limits: Record<string, number>;
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
}

export interface AdapterReport {
  /** The adapter as incept requests it. */
  adapter: AdapterView | null;
  /** The same request with unsafe (experimental) APIs allowed. */
  unsafe: AdapterView | null;
  /** Features only the unsafe instance lists. */
  experimentalFeatures: string[];
  /** The kernel-relevant features, each 'yes' or 'no' on incept's adapter (subgroup matrices: on the unsafe one). */
  keyFeatures: Record<string, boolean>;
  /** A device requested with the subgroup-matrix feature: 'ok', the error, or null when not offered. */
  subgroupMatrixDevice: string | null;
}

/** The limits the engine asks its device for (the rest are listed in `limits`). */
export const KEY_LIMITS = REQUESTED_LIMITS;

const KEY_FEATURES = ['shader-f16', 'subgroups', 'subgroup-size-control', 'timestamp-query'] as const;

function view(adapter: GPUAdapter, flags: string[]): AdapterView {
  const raw = adapter.info as unknown as Record<string, unknown>;
  const info: Record<string, string | number | boolean> = {};
  let configs: SubgroupMatrixConfig[] = [];
  for (const key in raw) {
    const v = raw[key];
    if (key === 'subgroupMatrixConfigs' && Array.isArray(v)) {
      configs = v.map((c: SubgroupMatrixConfig) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K }));
    } else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') info[key] = v;
  }
  const limits: Record<string, number> = {};
  for (const name in adapter.limits) limits[name] = adapter.limits[name as keyof GPUSupportedLimits] as number;
  const size = (k: string) => (typeof info[k] === 'number' ? (info[k] as number) : null);
  return {
    flags,
    info,
    features: [...adapter.features].map(String).sort(),
    limits,
    subgroupMinSize: size('subgroupMinSize'),
    subgroupMaxSize: size('subgroupMaxSize'),
    subgroupMatrixConfigs: configs,
  };
}

async function requestView(flags: string[]): Promise<{ view: AdapterView; adapter: GPUAdapter } | null> {
  const adapter = await create(flags).requestAdapter({ powerPreference: 'high-performance' });
  return adapter ? { view: view(adapter, flags), adapter } : null;
}

/** Requests a device with the subgroup-matrix feature and destroys it: 'ok' or the error's message. */
async function tryMatrixDevice(adapter: GPUAdapter): Promise<string> {
  try {
    const device = await adapter.requestDevice({ requiredFeatures: ['subgroups', SUBGROUP_MATRIX_FEATURE] as GPUFeatureName[] });
    const ok = device.features.has(SUBGROUP_MATRIX_FEATURE);
    device.destroy();
    return ok ? 'ok' : 'device created without the feature';
  } catch (e) {
    return `failed: ${(e as Error).message}`;
  }
}

/** Asks Dawn for the adapter (twice: as incept does, and with unsafe APIs allowed). */
export async function adapterReport(env: Record<string, string | undefined> = process.env): Promise<AdapterReport> {
  const flags = (env.INCEPT_DAWN_FLAGS ?? '').split(' ').filter(Boolean);
  const plain = await requestView(flags);
  const unsafe = await requestView([...flags, UNSAFE_FLAG]);
  const plainFeatures = new Set(plain?.view.features ?? []);
  const experimentalFeatures = (unsafe?.view.features ?? []).filter((f) => !plainFeatures.has(f));
  const keyFeatures: Record<string, boolean> = {};
  for (const f of KEY_FEATURES) keyFeatures[f] = plainFeatures.has(f);
  const matrix = unsafe?.view.features.includes(SUBGROUP_MATRIX_FEATURE) ?? false;
  keyFeatures[SUBGROUP_MATRIX_FEATURE] = matrix;
  return {
    adapter: plain?.view ?? null,
    unsafe: unsafe?.view ?? null,
    experimentalFeatures,
    keyFeatures,
    subgroupMatrixDevice: matrix && unsafe ? await tryMatrixDevice(unsafe.adapter) : null,
  };
}

/** The report as text: adapter, key features and limits, subgroup matrices, then everything else. */
export function formatAdapterReport(r: AdapterReport): string {
  if (!r.adapter) return 'no WebGPU adapter found';
  const a = r.adapter;
  const rows = (entries: [string, unknown][]) => {
    const w = Math.max(...entries.map(([k]) => k.length));
    return entries.map(([k, v]) => `  ${k.padEnd(w)}  ${v === '' || v === null || v === undefined ? '-' : String(v)}`);
  };
  const configs = (r.unsafe?.subgroupMatrixConfigs.length ? r.unsafe : a).subgroupMatrixConfigs;
  return [
    `adapter${a.flags.length ? ` (flags: ${a.flags.join(' ')})` : ''}`,
    ...rows([
      ...Object.entries(a.info).filter(([k]) => !k.startsWith('subgroup')),
      ['subgroup size', a.subgroupMinSize === null ? null : `${a.subgroupMinSize}..${a.subgroupMaxSize}`],
    ]),
    '',
    'key features',
    ...rows(Object.entries(r.keyFeatures).map(([k, v]) => [k, v ? 'yes' : 'no'])),
    `  subgroup-matrix configurations: ${configs.length ? '' : 'none reported'}`,
    ...configs.map((c) => `    ${c.componentType} -> ${c.resultComponentType}  M ${c.M}  N ${c.N}  K ${c.K}`),
    ...(r.subgroupMatrixDevice ? [`  device with ${SUBGROUP_MATRIX_FEATURE}: ${r.subgroupMatrixDevice}`] : []),
    '',
    'key limits',
    ...rows(KEY_LIMITS.map((k) => [k, a.limits[k]])),
    '',
    `features (${a.features.length}): ${a.features.join(', ') || '(none)'}`,
    `experimental features (allow_unsafe_apis): ${r.experimentalFeatures.join(', ') || '(none)'}`,
    '',
    'all limits',
    ...rows(Object.entries(a.limits)),
  ].join('\n');
}

// The GPU check's adapter report (src/gpu/adapter-report.ts): on this machine's adapter, checked
// against what the runtime's own device request saw (features incept enabled, limits), and the text
// form on a made-up report with subgroup-matrix configurations (no adapter here offers them).
import { afterAll, describe, expect, it } from 'vitest';
import { type AdapterReport, KEY_LIMITS, SUBGROUP_MATRIX_FEATURE, adapterReport, formatAdapterReport } from '../src/gpu/adapter-report.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';

afterAll(closeRuntime);

describe('adapterReport', () => {
  it('describes the adapter incept uses: its enabled features, limits and subgroup sizes', async () => {
    const rt = await getRuntime();
    const r = await adapterReport();
    expect(r.adapter).not.toBeNull();
    const a = r.adapter!;
    for (const f of rt.features) expect(a.features).toContain(f);
    expect(a.limits.maxStorageBufferBindingSize).toBe(rt.adapter.limits.maxStorageBufferBindingSize);
    expect(a.limits.maxComputeWorkgroupStorageSize).toBe(rt.adapter.limits.maxComputeWorkgroupStorageSize);
    expect(r.keyFeatures.subgroups).toBe(rt.adapter.features.has('subgroups'));
    expect(r.keyFeatures['shader-f16']).toBe(rt.adapter.features.has('shader-f16'));
    const info = rt.adapter.info as unknown as { subgroupMinSize?: number; subgroupMaxSize?: number };
    expect(a.subgroupMinSize).toBe(info.subgroupMinSize ?? null);
    expect(a.subgroupMaxSize).toBe(info.subgroupMaxSize ?? null);
    expect(a.info.vendor).toBe(rt.adapter.info.vendor);
    // Experimental features are the ones only the unsafe instance lists.
    for (const f of r.experimentalFeatures) {
      expect(a.features).not.toContain(f);
      expect(r.unsafe!.features).toContain(f);
    }
    expect(r.subgroupMatrixDevice === null).toBe(!r.keyFeatures[SUBGROUP_MATRIX_FEATURE]);
  });
});

describe('formatAdapterReport', () => {
  const limits = Object.fromEntries(KEY_LIMITS.map((k, i) => [k, 1000 + i]));
  const view = {
    flags: [],
    info: { vendor: 'acme', architecture: 'x', device: 'gpu9', description: 'Acme GPU 9', subgroupMinSize: 32, subgroupMaxSize: 32 },
    features: ['shader-f16', 'subgroups'],
    limits,
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    subgroupMatrixConfigs: [],
  };
  const report: AdapterReport = {
    adapter: view,
    unsafe: {
      ...view,
      flags: ['enable-dawn-features=allow_unsafe_apis'],
      features: [...view.features, SUBGROUP_MATRIX_FEATURE],
      subgroupMatrixConfigs: [{ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 8, K: 16 }],
    },
    experimentalFeatures: [SUBGROUP_MATRIX_FEATURE],
    keyFeatures: { 'shader-f16': true, subgroups: true, 'subgroup-size-control': false, 'timestamp-query': false, [SUBGROUP_MATRIX_FEATURE]: true },
    subgroupMatrixDevice: 'ok',
  };

  it('lists the adapter, key features, matrix configurations and key limits', () => {
    const text = formatAdapterReport(report);
    expect(text).toMatch(/^ {2}vendor +acme$/m);
    expect(text).toMatch(/^ {2}subgroup size +32\.\.32$/m);
    expect(text).toMatch(/^ {2}subgroup-size-control +no$/m);
    expect(text).toMatch(new RegExp(`^ {2}${SUBGROUP_MATRIX_FEATURE} +yes$`, 'm'));
    expect(text).toContain('    f16 -> f32  M 16  N 8  K 16');
    expect(text).toContain(`device with ${SUBGROUP_MATRIX_FEATURE}: ok`);
    expect(text).toMatch(/^ {2}maxStorageBufferBindingSize +1000$/m);
    expect(text).toContain(`experimental features (allow_unsafe_apis): ${SUBGROUP_MATRIX_FEATURE}`);
  });

  it('says so when there is no adapter', () => {
    expect(formatAdapterReport({ ...report, adapter: null, unsafe: null })).toBe('no WebGPU adapter found');
  });
});

// `incept info`: the adapter Dawn chose, every limit of the device incept opened on it, and the
// features (those incept enabled, and all the adapter offers).
import { OPTIONAL_FEATURES, getRuntime } from '../gpu/runtime.ts';
import { UsageError } from './errors.ts';
import { type OptionSpec, helpText, parseOptions } from './options.ts';

const USAGE = 'incept info [--json] [--adapters]';
const OPTIONS: OptionSpec[] = [
  { name: 'json', help: 'print the adapter, limits and features as JSON' },
  { name: 'adapters', help: "the GPU check's adapter report: every feature (Dawn's experimental ones too), key limits, subgroup sizes, subgroup-matrix configurations" },
];

export async function infoMain(argv: string[]): Promise<number> {
  const p = parseOptions('info', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(helpText(USAGE, 'The WebGPU adapter Dawn chose, every limit of the device incept opened on it, and the features.', OPTIONS));
    return 0;
  }
  if (p.positionals.length) throw new UsageError(`info: unexpected argument '${p.positionals[0]}' (usage: ${USAGE})`);
  const json = p.values.json === true;
  if (p.values.adapters === true) {
    const { adapterReport, formatAdapterReport } = await import('../gpu/adapter-report.ts');
    const report = await adapterReport();
    console.log(json ? JSON.stringify(report, null, 2) : formatAdapterReport(report));
    return report.adapter ? 0 : 1;
  }

  const rt = await getRuntime();
  const adapter = { ...rt.adapterInfo };
  // Dawn's Node build does not report its backend; on each platform it ships exactly one.
  if (adapter.backend === 'unknown') {
    const platformBackend: Record<string, string> = { linux: 'vulkan', darwin: 'metal', win32: 'd3d12' };
    const guess = platformBackend[process.platform];
    if (guess) adapter.backend = `${guess} (Dawn's backend on ${process.platform}; not reported by the adapter)`;
  }
  const info = rt.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const limits: Record<string, number> = {};
  for (const name in rt.limits) limits[name] = rt.limits[name as keyof GPUSupportedLimits] as number;
  const enabled = [...rt.features].sort();
  const offered = [...rt.adapter.features].map(String).sort();

  if (json) {
    console.log(JSON.stringify({ adapter, limits, features: { enabled, adapter: offered } }, null, 2));
    return 0;
  }
  const rows = (entries: [string, string | number | boolean][]) => {
    const w = Math.max(...entries.map(([k]) => k.length));
    return entries.map(([k, v]) => `  ${k.padEnd(w)}  ${v === '' ? '-' : v}`);
  };
  const wanted = OPTIONAL_FEATURES.map((f) => `${f} ${rt.features.has(f) ? 'yes' : 'no'}`).join(', ');
  console.log(
    [
      'adapter',
      ...rows([
        ['vendor', adapter.vendor],
        ['architecture', adapter.architecture],
        ['device', adapter.device],
        ['description', adapter.description],
        ['backend', adapter.backend],
        ['fallback adapter', adapter.isFallbackAdapter],
        ['subgroup size', info.subgroupMinSize === undefined ? '' : `${info.subgroupMinSize}..${info.subgroupMaxSize}`],
      ]),
      '',
      'device limits',
      ...rows(Object.entries(limits)),
      '',
      `features incept uses: ${wanted}`,
      `features enabled:     ${enabled.join(', ') || '(none)'}`,
      `features of adapter:  ${offered.join(', ') || '(none)'}`,
    ].join('\n'),
  );
  return 0;
}

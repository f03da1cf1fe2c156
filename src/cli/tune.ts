// `incept tune MODEL [--batch N] [--train]`: tunes the kernels of a model ahead of time (convs;
// with --train also their gradients and batchnorm's training reductions). The model's inference
// program (and with --train its training step, every layer trained) is compiled at the batch
// size; every call with kernel variants is looked up and each shape class not tuned yet on this
// adapter has its candidate variants checked against the reference and timed (src/kernels/tuner.ts).
// Prints one row per shape class and writes the choices into the tuning cache file.
import { writeFileAtomic } from '../import/atomic-write.ts';
import { getRuntime } from '../gpu/runtime.ts';
import { Model } from '../graph/model.ts';
import type { StepVariant } from '../graph/program.ts';
import { adapterKey } from '../kernels/choice.ts';
import { type TuneResult, tuneCalls } from '../kernels/tuner.ts';
import { tuningCachePath } from '../platform/host.ts';
import { Trainer } from '../train/trainer.ts';
import { UsageError } from './errors.ts';
import { modelOptionSpecs, modelOptionsOf, resolveModel } from './model-options.ts';
import { type OptionSpec, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE = 'incept tune MODEL [--batch N] [--train] [--force] [--variants A,B] [--json FILE] [--size HxW]';

const OPTIONS: OptionSpec[] = [
  { name: 'batch', value: 'N', help: 'the batch size the model will run at (default 1)', parse: wholeNumber(1) },
  { name: 'train', help: "also tune the training step's kernels (every layer trained: forward, input and\nfilter gradients, batchnorm's batch-statistics reductions)" },
  { name: 'force', help: 'time shape classes that have a choice already' },
  { name: 'variants', value: 'A,B', help: 'only these candidate variants (the reference always runs)' },
  { name: 'runs', value: 'N', help: 'timed passes per candidate (default 5)', parse: wholeNumber(1) },
  { name: 'json', value: 'FILE', needs: 'a file', help: 'also write the results as JSON' },
  ...modelOptionSpecs('size', 'depth-multiplier', 'num-classes', 'seed'),
];

const HELP = helpText(
  USAGE,
  `Chooses, for each conv layer shape of MODEL on this adapter (with --train also each training
batchnorm's shape), the fastest kernel variant whose output matches the reference kernel, and
keeps the choice in the tuning cache (INCEPT_TUNING_CACHE, default
$XDG_CACHE_HOME/incept/tuning.json or ~/.cache/incept/tuning.json), keyed by adapter and driver,
so later runs start with it. MODEL is any model incept reads or random:inception_v3. On GPUs the
engine also tunes on first use (INCEPT_AUTOTUNE=1/0).`,
  OPTIONS,
);

interface Row {
  layer: string;
  more: number;
  result: TuneResult;
}

/** The calls with kernel variants in the model's programs, with the step that made each. */
async function collect(model: Model, batch: number, train: boolean): Promise<StepVariant[]> {
  const used = [...model.plan(batch).variants()];
  if (train) {
    const trainer = new Trainer(model, { batch, optimizer: { kind: 'sgd' }, learningRate: 0.01, training: { trainable: () => true } });
    try {
      used.push(...trainer.program.variants());
    } finally {
      trainer.dispose();
    }
  }
  return used;
}

function rows(used: StepVariant[], results: TuneResult[]): Row[] {
  return results.map((result) => {
    const steps = used.filter((u) => u.key === result.key).map((u) => u.step);
    return { layer: steps[0] ?? '?', more: Math.max(0, new Set(steps).size - 1), result };
  });
}

function table(list: Row[]): string[] {
  const cells = list.map(({ layer, more, result: r }) => [
    more ? `${layer} (+${more})` : layer,
    r.key.slice(r.call.family.length + 1),
    [
      ...Object.entries(r.ms)
        .sort((a, b) => a[1] - b[1])
        .map(([n, ms]) => `${n} ${ms.toFixed(3)}`),
      ...r.rejected.map((x) => `${x.name} rejected`),
    ].join(', ') || '-',
    `${r.chosen}${r.cached ? ' (cached)' : ''}${r.unconfirmed ? ` (${r.unconfirmed}: not faster when alternated)` : ''}`,
  ]);
  const header = ['layer', 'shape', 'candidates (ms)', 'chosen'];
  const w = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(w[i]))).join('  ');
  return [line(header), line(w.map((n) => '-'.repeat(n))), ...cells.map(line)];
}

export async function tuneMain(argv: string[]): Promise<number> {
  const p = parseOptions('tune', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(HELP);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError(`tune: give exactly one model (got ${p.positionals.length}; usage: ${USAGE})`);
  const o = modelOptionsOf('tune', { ...p.values, model: p.positionals[0] });
  const batch = (p.values.batch as number | undefined) ?? 1;
  const resolved = resolveModel('tune', o, 'its weights do not matter for tuning (only shapes do)');
  const rt = await getRuntime();
  const model = new Model(rt, resolved.build);
  try {
    const used = await collect(model, batch, p.values.train === true);
    process.stderr.write(`tune: ${new Set(used.map((u) => u.key)).size} kernel shape classes on ${rt.adapterName}\n`);
    const variants = (p.values.variants as string | undefined)?.split(',').map((s) => s.trim());
    const results = await tuneCalls(
      rt,
      used.map((u) => u.call),
      { force: p.values.force === true, variants, runs: p.values.runs as number | undefined, log: (l) => process.stderr.write(`  ${l}\n`) },
    );
    const list = rows(used, results);
    const path = tuningCachePath();
    console.log([`adapter ${adapterKey(rt)}`, `cache ${path ?? '(off: INCEPT_TUNING_CACHE)'}`, '', ...table(list)].join('\n'));
    const json = p.values.json as string | undefined;
    if (json) writeFileAtomic(json, [new TextEncoder().encode(`${JSON.stringify({ adapter: adapterKey(rt), cache: path, results: list }, null, 1)}\n`)]);
  } finally {
    model.dispose();
  }
  return 0;
}

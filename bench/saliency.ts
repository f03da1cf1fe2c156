// Saliency suite: the four methods of src/explain/saliency.ts for one image on Inception v3
// (random weights, seed 1, no aux head), as `incept saliency --class K` runs them.
//
//   npm run bench -- saliency [--json FILE] [--size N] [--runs N] [--batched-runs N] [--samples N]
//                             [--steps N] [--methods vanilla,smoothgrad,ig,gradcam] [--depth-multiplier X]
//                             [--top-class]
//
// Each case is one saliency() call, timed on the wall clock: uploads, every forward + backward
// pass, readbacks and the host-side reduction. The target class is given (class 1), or with
// --top-class left to saliency(), which reads it from the first pass's forward (the CLI's
// default; the same passes either way). ms is the median of --runs runs (default 2; SmoothGrad
// and IG, dozens of rows each, --batched-runs, default 1) after the first run, which is reported
// apart: it compiles the one gradient program the method needs (batch 1, loss, for vanilla;
// batch 1 with the default layer (Mixed_7c at 299) kept for Grad-CAM; one batch of at most 8 for SmoothGrad (loss) and IG
// (class score), see batchPlan) and is the warm-up.
// Gradient passes per call (SaliencyResult.passes): vanilla 1, Grad-CAM 1, SmoothGrad 25 + 1 rows
// (the image gives the score) in 4 passes of 7, IG 50 + 2 rows (the path's ends give the scores)
// in 7 passes of 8.
import { type SaliencyMethod, type SaliencyOptions, disposeSaliency, gradCamLayer, gradientProgram, saliency } from '../src/explain/saliency.ts';
import { getRuntime } from '../src/gpu/runtime.ts';
import { median } from '../src/gpu/timing.ts';
import { Model } from '../src/graph/model.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';
import { seededUniform } from '../src/kernels/seeded.ts';

const SEED = 1;
const TARGET = 1; // any class costs the same
const METHODS: SaliencyMethod[] = ['vanilla', 'smoothgrad', 'ig', 'gradcam'];

interface Options {
  size: number;
  runs: number;
  batchedRuns: number;
  samples: number;
  steps: number;
  methods: SaliencyMethod[];
  depthMultiplier: number;
  topClass: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = { size: 299, runs: 2, batchedRuns: 1, samples: 25, steps: 50, methods: METHODS, depthMultiplier: 1, topClass: false };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`bench saliency: ${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--size') o.size = int(a, argv[++i], 75);
    else if (a === '--runs') o.runs = int(a, argv[++i], 1);
    else if (a === '--batched-runs') o.batchedRuns = int(a, argv[++i], 1);
    else if (a === '--samples') o.samples = int(a, argv[++i], 1);
    else if (a === '--steps') o.steps = int(a, argv[++i], 1);
    else if (a === '--top-class') o.topClass = true;
    else if (a === '--depth-multiplier') {
      o.depthMultiplier = Number(argv[++i]);
      if (!(o.depthMultiplier > 0 && o.depthMultiplier <= 4)) throw new UsageError('bench saliency: --depth-multiplier needs a number in (0, 4]');
    } else if (a === '--methods') {
      const list = (argv[++i] ?? '').split(',');
      for (const m of list) if (!METHODS.includes(m as SaliencyMethod)) throw new UsageError(`bench saliency: unknown method '${m}' (methods: ${METHODS.join(', ')})`);
      o.methods = list as SaliencyMethod[];
    } else {
      throw new UsageError(
        `bench saliency: unknown option '${a}' (options: --json FILE, --size N, --runs N, --batched-runs N, --samples N, --steps N, --methods ${METHODS.join(',')}, --depth-multiplier X, --top-class)`,
      );
    }
  }
  return o;
}

const inputData = seededUniform;

const say = (msg: string) => process.stderr.write(`${msg}\n`);
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

export async function run(argv: string[]): Promise<Report> {
  const o = parse(argv);
  const rt = await getRuntime();
  const model = await Model.inceptionV3({ inputSize: o.size, depthMultiplier: o.depthMultiplier, auxLogits: false, seed: SEED }, rt);
  for (const p of model.graph.params.values()) void p.data; // random weights made now, not counted
  const image = inputData(o.size * o.size * 3, 7);
  const base = `inception_v3 ${o.size}${o.depthMultiplier === 1 ? '' : ` x${o.depthMultiplier}`}`;
  const cases: Record<SaliencyMethod, { label: string; opts: SaliencyOptions; objective: 'loss' | 'score' }> = {
    vanilla: { label: 'vanilla gradient', opts: { method: 'vanilla' }, objective: 'loss' },
    smoothgrad: { label: `SmoothGrad ${o.samples} samples`, opts: { method: 'smoothgrad', samples: o.samples }, objective: 'loss' },
    ig: { label: `integrated gradients ${o.steps} steps`, opts: { method: 'ig', steps: o.steps }, objective: 'score' },
    gradcam: { label: `Grad-CAM ${gradCamLayer(model.graph)}`, opts: { method: 'gradcam' }, objective: 'score' }, // the default layer
  };

  const results: (CaseResult & Record<string, unknown>)[] = [];
  try {
    for (const method of o.methods) {
      const c = cases[method];
      const label = `${base} ${c.label}${o.topClass ? ' (top class)' : ''}`;
      const opts = { ...c.opts, target: o.topClass ? undefined : TARGET };
      say(`${label}: first run (compiles what it needs) ...`);
      let t = performance.now();
      const first = await saliency(model, image, opts);
      const firstMs = performance.now() - t;
      const peak = gradientProgram(model, first.batch, c.objective, first.layer).program.peakBytes;
      const images = first.passes * first.batch; // rows through the program, padding included
      say(`  first run ${fmt(firstMs)}; ${first.passes} passes of ${first.batch} per call; the program's planned peak ${mib(peak)}`);
      const runs = method === 'smoothgrad' || method === 'ig' ? o.batchedRuns : o.runs;
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        t = performance.now();
        await saliency(model, image, opts);
        samples.push(performance.now() - t);
      }
      const ms = median(samples);
      say(`  ${samples.map(fmt).join(', ')} -> median ${fmt(ms)} (${fmt(ms / images)} per image gradient)`);
      results.push({ ...result(label, null, ms, null, peak), method, runs, samples_ms: samples, image_gradients: images, passes: first.passes, batch: first.batch });
      results.push({ ...result(`${label} first run`, null, firstMs, null, peak), method });
    }
  } finally {
    disposeSaliency(model);
    model.dispose();
  }
  const timing = [
    'wall clock per saliency() call for one image (uploads, forward + backward passes, readbacks, host reduction)',
    `median of ${o.runs} run${o.runs === 1 ? '' : 's'} (SmoothGrad, IG: ${o.batchedRuns}) after the first run, which compiles the method's gradient programs and is reported apart`,
    `${o.topClass ? 'top class chosen by saliency()' : 'target class given'}; random weights, seed ${SEED}, no aux head; peak = the gradient program's planned memory (parameters on top)`,
  ].join('; ');
  return { suite: 'saliency', adapter: rt.adapterName, timing, cases: results };
}

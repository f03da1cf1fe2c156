// `incept demo` (`npm run demo`): real transfer learning (src/demo/run.ts): the committed ImageNet
// layers of Inception v3 -> new head -> the top block fine-tuned -> the same network from random
// initialisation for comparison -> evaluation -> saliency -> an HTML report, whose path it prints
// last. On RetinaMNIST (committed) by default, or on the user's images with --data.
import { getRuntime } from '../gpu/runtime.ts';
import { runDemo } from '../demo/run.ts';
import { UsageError } from './errors.ts';
import { type OptionSpec, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE = 'incept demo [--data DIR|CSV] [--out DIR] [--size N] [--train-images N] [--head-epochs N] [--top-epochs N] [--no-scratch] [--seed N]';

const OPTIONS: OptionSpec[] = [
  { name: 'data', value: 'DIR|CSV', help: "your own labelled images (class folders or a CSV) instead of RetinaMNIST" },
  { name: 'out', value: 'DIR', help: 'where the run and report.html go (default out/demo)' },
  { name: 'size', value: 'N', help: 'input size (at least 75)', parse: wholeNumber(1, 'a positive integer') },
  { name: 'train-images', value: 'N', help: 'training images to use', parse: wholeNumber(1, 'a positive integer') },
  { name: 'head-epochs', value: 'N', help: 'epochs training the new head only', parse: wholeNumber(1, 'a positive integer') },
  { name: 'top-epochs', value: 'N', help: 'epochs fine-tuning the top blocks too', parse: wholeNumber(1, 'a positive integer') },
  { name: 'seed', value: 'N', help: 'the split and initialisation seed', parse: wholeNumber(1, 'a positive integer') },
  { name: 'no-scratch', help: 'skip the random-initialisation comparison' },
];

export const DEMO_HELP = helpText(
  USAGE,
  `Transfer learning as Esteva et al. and Gulshan et al. did it, on real images: the ImageNet layers of
Inception v3 (the TF-Slim checkpoint from weights/ when fetched, else the committed ImageNet trunk)
-> a new head -> fine-tuning -> evaluation (ROC/AUC with its confidence band, operating point) ->
saliency maps -> an HTML report, whose path it prints last. RetinaMNIST by default; --data for yours.`,
  OPTIONS,
);

export async function demoMain(argv: string[]): Promise<number> {
  const p = parseOptions('demo', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  if (p.positionals.length) throw new UsageError(`demo: unexpected argument '${p.positionals[0]}' (usage: ${USAGE})`);
  const v = p.values as Record<string, never>;
  const opts: Parameters<typeof runDemo>[0] = {
    out: v.out ?? 'out/demo',
    data: v.data,
    inputSize: v.size,
    trainImages: v['train-images'],
    headEpochs: v['head-epochs'],
    topEpochs: v['top-epochs'],
    seed: v.seed,
    noScratch: v['no-scratch'] ?? false,
  };
  if (opts.inputSize !== undefined && opts.inputSize < 75) throw new UsageError(`demo: --size ${opts.inputSize} is below Inception v3's minimum of 75`);
  const rt = await getRuntime();
  console.log(`incept demo on ${rt.adapterName}`);
  const r = await runDemo(opts);
  for (const w of r.warnings) console.log(`incept demo: warning: ${w}`);
  console.log(
    `incept demo: ${r.setting}: test AUC ${r.auc.toFixed(3)} (95% CI ${r.aucLower.toFixed(3)}-${r.aucUpper.toFixed(3)}), accuracy ${(100 * r.accuracy).toFixed(1)}%, ` +
      `mean one-vs-rest AUC ${r.meanAuc.toFixed(3)}` +
      (r.operatingPoint ? `, at the validation-chosen operating point sensitivity ${r.operatingPoint.test.sensitivity.toFixed(3)} specificity ${r.operatingPoint.test.specificity.toFixed(3)}` : '') +
      (r.scratchAuc !== undefined ? `; random initialisation with the same time: AUC ${r.scratchAuc.toFixed(3)}` : '') +
      `; ${r.seconds.toFixed(0)} s`,
  );
  console.log(`incept demo: report ${r.report}`);
  return 0;
}

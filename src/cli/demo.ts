// `incept demo` (`npm run demo`): the whole workflow on generated lesion images (src/demo/run.ts):
// data -> Inception v3 -> new head -> frozen early layers -> fine-tuning -> evaluation -> saliency
// -> an HTML report, whose path it prints last.
import { getRuntime } from '../gpu/runtime.ts';
import { runDemo } from '../demo/run.ts';
import { UsageError } from './errors.ts';
import { type OptionSpec, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE = 'incept demo [--out DIR] [--size N] [--epochs N] [--train-images N] [--test-images N] [--trainable-from LAYER] [--full-width]';

const OPTIONS: OptionSpec[] = [
  { name: 'out', value: 'DIR', help: 'where the images, the run and report.html go (default out/demo)' },
  { name: 'size', value: 'N', help: 'input size (default 107; at least 75)', parse: wholeNumber(1, 'a positive integer') },
  { name: 'epochs', value: 'N', help: 'training epochs (default 10)', parse: wholeNumber(1, 'a positive integer') },
  { name: 'train-images', value: 'N', help: 'generated training images (default 160)', parse: wholeNumber(1, 'a positive integer') },
  { name: 'test-images', value: 'N', help: 'generated test images (default 60)', parse: wholeNumber(1, 'a positive integer') },
  { name: 'trainable-from', value: 'LAYER', help: 'the first layer that trains (default Mixed_5b)' },
  { name: 'full-width', help: 'the full Inception v3 instead of depth multiplier 0.25 (random weights only)' },
];

export const DEMO_HELP = helpText(
  USAGE,
  `The whole workflow on generated dermoscopy-like lesion images: Inception v3 (ImageNet weights from
weights/ when present, else random at depth multiplier 0.25) -> a new two-class head -> frozen
early layers -> fine-tuning -> evaluation (ROC/AUC) -> saliency maps -> an HTML report, whose path
it prints last.`,
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
  // Without ImageNet weights the network starts random; a quarter-width Inception v3 (TF-Slim
  // depth_multiplier 0.25) learns the lesions in minutes on two cores where the full one would not.
  const opts = {
    out: v.out ?? 'out/demo',
    inputSize: v.size ?? 107,
    epochs: v.epochs ?? 10,
    trainImages: v['train-images'] ?? 160,
    testImages: v['test-images'] ?? 60,
    trainableFrom: v['trainable-from'] ?? 'Mixed_5b',
    depthMultiplier: v['full-width'] ? 1 : 0.25,
    learningRate: 0.003,
  };
  if (opts.inputSize < 75) throw new UsageError(`demo: --size ${opts.inputSize} is below Inception v3's minimum of 75`);
  const rt = await getRuntime();
  console.log(`incept demo on ${rt.adapterName}`);
  const r = await runDemo(opts);
  console.log(
    `incept demo: test AUC ${r.auc === undefined ? 'n/a' : r.auc.toFixed(3)}, accuracy ${(100 * r.accuracy).toFixed(1)}%, ` +
      `saliency inside the lesion ${(100 * r.saliencyInLesion).toFixed(1)}% (lesion area ${(100 * r.lesionArea).toFixed(1)}%), ` +
      `${r.seconds.toFixed(0)} s${r.pretrained ? '' : ' (random initial weights)'}`,
  );
  console.log(`incept demo: report ${r.report}`);
  return 0;
}

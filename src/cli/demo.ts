// `incept demo` (`npm run demo`): the whole workflow on generated lesion images (src/demo/run.ts):
// data -> Inception v3 -> new head -> frozen early layers -> fine-tuning -> evaluation -> saliency
// -> an HTML report, whose path it prints last.
import { getRuntime } from '../gpu/runtime.ts';
import { runDemo } from '../demo/run.ts';
import { UsageError } from './errors.ts';

const USAGE = 'incept demo [--out DIR] [--size N] [--epochs N] [--train-images N] [--test-images N] [--trainable-from LAYER] [--full-width]';

export async function demoMain(argv: string[]): Promise<number> {
  // Without ImageNet weights the network starts random; a quarter-width Inception v3 (TF-Slim
  // depth_multiplier 0.25) learns the lesions in minutes on two cores where the full one would not.
  const opts = { out: 'out/demo', inputSize: 107, epochs: 10, trainImages: 160, testImages: 60, trainableFrom: 'Mixed_5b', depthMultiplier: 0.25, learningRate: 0.003 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const num = () => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`demo: ${flag} needs a positive integer, got '${value ?? ''}'`);
      i++;
      return n;
    };
    if (flag === '--out' && value) (opts.out = value), i++;
    else if (flag === '--size') opts.inputSize = num();
    else if (flag === '--epochs') opts.epochs = num();
    else if (flag === '--train-images') opts.trainImages = num();
    else if (flag === '--test-images') opts.testImages = num();
    else if (flag === '--trainable-from' && value) (opts.trainableFrom = value), i++;
    else if (flag === '--full-width') opts.depthMultiplier = 1;
    else throw new UsageError(`demo: unexpected argument '${flag}' (usage: ${USAGE})`);
  }
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

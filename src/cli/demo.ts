// `incept demo` (`npm run demo`): real transfer learning (src/demo/run.ts): the committed ImageNet
// layers of Inception v3 -> new head -> the top block fine-tuned -> the same network from random
// initialisation for comparison -> evaluation -> saliency -> an HTML report, whose path it prints
// last. On RetinaMNIST (committed) by default, or on the user's images with --data.
import { getRuntime } from '../gpu/runtime.ts';
import { runDemo } from '../demo/run.ts';
import { UsageError } from './errors.ts';

const USAGE = 'incept demo [--data DIR|CSV] [--out DIR] [--size N] [--train-images N] [--head-epochs N] [--top-epochs N] [--no-scratch] [--seed N]';

export async function demoMain(argv: string[]): Promise<number> {
  const opts: Parameters<typeof runDemo>[0] = { out: 'out/demo' };
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
    else if (flag === '--data' && value) (opts.data = value), i++;
    else if (flag === '--size') opts.inputSize = num();
    else if (flag === '--train-images') opts.trainImages = num();
    else if (flag === '--head-epochs') opts.headEpochs = num();
    else if (flag === '--top-epochs') opts.topEpochs = num();
    else if (flag === '--seed') opts.seed = num();
    else if (flag === '--no-scratch') opts.noScratch = true;
    else throw new UsageError(`demo: unexpected argument '${flag}' (usage: ${USAGE})`);
  }
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

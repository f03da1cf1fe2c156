// The `incept` command: a table of subcommands, each loaded only when it runs (so a command whose
// module is not ready does not break the others). A user's mistake is one line on stderr,
// `incept: error: ...`, with exit status 1; a stack trace only with --debug.
import { closeRuntime } from '../gpu/runtime.ts';
import { UsageError } from './errors.ts';

export interface Command {
  summary: string;
  usage: string;
  /** The command prints its own --help. */
  ownHelp?: boolean;
  /** Returns the exit status (0 when it returns nothing). */
  run(argv: string[]): Promise<number | void>;
}

export const COMMANDS: Record<string, Command> = {
  info: {
    summary: 'show the WebGPU adapter, its limits and features',
    usage: 'incept info [--json]',
    ownHelp: true,
    run: async (argv) => (await import('./info.ts')).infoMain(argv),
  },
  conformance: {
    summary: "run ONNX's node tests for the ops incept implements",
    usage: 'incept conformance [--dir DIR] [--json FILE] [--filter STR] [--verbose]',
    ownHelp: true,
    run: async (argv) => {
      // Written by another part of the project; loaded through a variable so this file compiles without it.
      const path = '../conformance/cli.ts';
      const mod: { conformanceMain(argv: string[]): Promise<number | void> } = await import(path).catch((err: unknown) => {
        if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes('conformance/cli')) {
          throw new UsageError('the conformance runner (src/conformance/cli.ts) is not part of this build yet');
        }
        throw err;
      });
      return mod.conformanceMain(argv);
    },
  },
  classify: {
    summary: 'classify PNG/JPEG images with a model (.safetensors, .ckpt/.index, .pb, .onnx): top-k classes and probabilities',
    usage: 'incept classify IMAGE... --model MODEL [--labels FILE] [--top K] [--json] [--output NODE]',
    ownHelp: true,
    run: async (argv) => (await import('./classify.ts')).classifyMain(argv),
  },
  import: { summary: 'convert a checkpoint, frozen GraphDef (.pb) or ONNX model to an incept model file', usage: 'incept import FILE --out MODEL.safetensors [--labels FILE] [--output NODE]...', ownHelp: true, run: async (argv) => (await import('./import.ts')).importMain(argv) },
  export: { summary: 'write a model (a fine-tuned one with its new head too) as ONNX for ONNX Runtime, PyTorch or TensorFlow', usage: 'incept export MODEL --onnx OUT.onnx [--output NODE]... [--opset N]', ownHelp: true, run: async (argv) => (await import('./export.ts')).exportMain(argv) },
  saliency: { summary: 'saliency maps (vanilla gradient, SmoothGrad, integrated gradients, Grad-CAM) as PNG overlays and raw float32 maps', usage: 'incept saliency IMAGE... --model MODEL [--class K | --label NAME] --method vanilla|smoothgrad|ig|gradcam [--layer NAME] --out DIR [--json]', ownHelp: true, run: async (argv) => (await import('./saliency.ts')).saliencyMain(argv) },
  weights: { summary: 'download TF-Slim checkpoints, convert them to model files, list variables', usage: 'incept weights <list|fetch|convert|inspect> ...', ownHelp: true, run: async (argv) => (await import('./weights.ts')).weightsMain(argv) },
  partition: { summary: 'partition a disease taxonomy into training classes by image count (Esteva et al.)', usage: 'incept partition --taxonomy FILE --images MANIFEST [--max-images N] [--out FILE] [--json]', ownHelp: true, run: async (argv) => (await import('./partition.ts')).partitionMain(argv) },
  train: { summary: 'fine-tune a model on labelled images: new head, frozen layers, checkpoints, metrics, curves', usage: 'incept train --data DIR|CSV --model FILE|random:inception_v3 --out RUN_DIR [--head N|sigmoid] [--trainable-from LAYER] [--epochs E] [--batch B] [--lr LR] [--optimizer O] [--resume RUN_DIR]', ownHelp: true, run: async (argv) => (await import('./train.ts')).trainMain(argv) },
  inspect: { summary: 'show what a model file holds: format, inputs/outputs, parameters, classes, preprocessing, cut points, layers', usage: 'incept inspect MODEL [--depth N] [--json] [--labels FILE]', ownHelp: true, run: async (argv) => (await import('./inspect.ts')).inspectMain(argv) },
  evaluate: { summary: 'evaluate a model on labelled images: accuracy, top-k, confusion matrix, sensitivity/specificity, ROC/AUC', usage: 'incept evaluate --data DIR|CSV --model FILE [--json FILE] [--out DIR]', ownHelp: true, run: async (argv) => (await import('./evaluate.ts')).evaluateMain(argv) },
  worker: { summary: 'take jobs (image shards, training runs) from a Redis job queue and run them on this GPU', usage: 'incept worker --queue redis://HOST:PORT [--queue-name NAME] [--lock-seconds S]', ownHelp: true, run: async (argv) => (await import('./worker.ts')).workerMain(argv) },
  submit: { summary: 'split classify / saliency / evaluate over many images, or a fine-tuning sweep, into queue jobs; follow them and merge the results', usage: 'incept submit classify|saliency|evaluate|train --queue redis://HOST:PORT --out DIR ...', ownHelp: true, run: async (argv) => (await import('./submit.ts')).submitMain(argv) },
  tune: {
    summary: 'choose the fastest checked kernel variant for each conv layer of a model on this GPU ahead of time (tuning cache)',
    usage: 'incept tune MODEL [--batch N] [--train] [--force] [--json FILE]',
    ownHelp: true,
    run: async (argv) => (await import('./tune.ts')).tuneMain(argv),
  },
  demo: {
    summary: 'transfer learning from ImageNet on real medical images (RetinaMNIST, or --data DIR|CSV): fine-tuning, evaluation, saliency, HTML report',
    usage: 'incept demo [--data DIR|CSV] [--out DIR] [--size N] [--train-images N] [--head-epochs N] [--top-epochs N] [--no-scratch]',
    ownHelp: true,
    run: async (argv) => (await import('./demo.ts')).demoMain(argv),
  },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: incept <command> [options] [--debug]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    "'incept <command> --help' shows a command's options; --debug prints stack traces.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic && COMMANDS[topic]) console.log(`usage: ${COMMANDS[topic].usage}\n${COMMANDS[topic].summary}`);
    else console.log(help());
    return name === undefined ? 1 : 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')}; see incept --help)`);
  if (!command.ownHelp && (rest.includes('--help') || rest.includes('-h'))) {
    console.log(`usage: ${command.usage}\n${command.summary}`);
    return 0;
  }
  // HDF5 models need their reader started (asynchronously) before the commands open them.
  if (rest.some((a) => /\.(h5|hdf5)$/i.test(a))) await (await import('../import/load-model.ts')).prepareModelReaders(rest);
  return (await command.run(rest)) ?? 0;
}

const args = process.argv.slice(2);
const debug = args.includes('--debug');
let status = 1;
try {
  status = await main(args.filter((a) => a !== '--debug'));
} catch (err) {
  const e = err instanceof Error ? err : new Error(String(err));
  const where = e instanceof UsageError || e.name === 'GpuError' ? '' : ` (${e.name})`;
  process.stderr.write(`incept: error: ${e.message.split('\n')[0]}${where}\n`);
  if (debug) process.stderr.write(`${e.stack ?? ''}\n`);
  status = 1;
} finally {
  await closeRuntime();
}
process.exitCode = status;

// `incept import FILE --out MODEL.safetensors`: converts any model incept reads (a TF-Slim Inception
// v3 checkpoint, a frozen TensorFlow GraphDef, an ONNX model, or an incept model file) into an incept
// model file: every parameter bit for bit, the graph definition (or architecture and options), the
// class names and the preprocessing. `incept classify --model MODEL.safetensors` then gives what it
// gives on FILE. No GPU is used.
import { openModel, saveOpenedModel } from '../import/load-model.ts';
import { UsageError } from './errors.ts';
import { parseChannels, parseCrop, parseSize } from './classify.ts';

const USAGE =
  'incept import FILE --out MODEL.safetensors [--labels FILE] [--output NODE]... [--size HxW] [--crop F] [--mean M] [--std S] ' +
  '[--depth-multiplier X] [--num-classes N]';

const HELP = `usage: ${USAGE}

Converts a model file to incept's model format (.safetensors with metadata). FILE may be a TF-Slim
Inception v3 checkpoint (V1 file, V2 prefix or .index), a frozen TensorFlow GraphDef (.pb), an ONNX
model (.onnx) or an incept model file; the format is read from the content.

  --out MODEL            the model file to write (atomically)
  --labels FILE          class names to store (one per line, or TF-Slim's N:label lines); default:
                         X_labels.txt or labels.txt next to FILE, when it fits the classes
  --output NODE          .pb / .onnx: a graph output (repeat for several; default: the graph's end
                         nodes); the first one holds the class scores
  --size HxW             preprocessing size (a graph's input size must match; an Inception
                         checkpoint is built at it; default 299x299)
  --crop F               central crop fraction in (0, 1]
  --mean M, --std S      (x - M) / S on 0..255 values, one number or R,G,B
                         Defaults: a GraphDef with a fixed input uses TF's retrain/label_image
                         convention (no crop, resize to the input, (x - 127.5) / 127.5); an Inception
                         checkpoint TF-Slim's eval preprocessing (crop 0.875, [-1, 1]); ONNX
                         torchvision's ImageNet mean/std with crop 0.875
  --depth-multiplier X   checkpoint: Inception v3 depth multiplier (default: from its shapes)
  --num-classes N        checkpoint: classes (default: from its logits weights)`;

export interface ImportOptions {
  file: string;
  out: string;
  labels?: string;
  outputs: string[];
  size?: [number, number];
  crop?: number;
  mean?: number | number[];
  std?: number | number[];
  depthMultiplier?: number;
  numClasses?: number;
}

export function parseImportArgs(argv: string[]): ImportOptions {
  const o: Partial<ImportOptions> & { outputs: string[] } = { outputs: [] };
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let value: string | undefined;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    if (eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => value ?? argv[++i];
    const text = (what: string) => {
      const v = next();
      if (!v || v.startsWith('--')) throw new UsageError(`import: ${a} needs ${what}`);
      return v;
    };
    switch (a) {
      case '--out':
        o.out = text('a file');
        break;
      case '--labels':
        o.labels = text('a file');
        break;
      case '--output':
        o.outputs.push(text('a node name'));
        break;
      case '--size':
        o.size = parseSize(a, next(), 'import');
        break;
      case '--crop':
        o.crop = parseCrop(a, next(), 'import');
        break;
      case '--mean':
        o.mean = parseChannels(a, next(), 'import');
        break;
      case '--std':
        o.std = parseChannels(a, next(), 'import', true);
        break;
      case '--depth-multiplier': {
        const v = Number(next());
        if (!(v > 0 && v <= 4)) throw new UsageError('import: --depth-multiplier needs a number in (0, 4]');
        o.depthMultiplier = v;
        break;
      }
      case '--num-classes': {
        const v = Number(next());
        if (!(Number.isInteger(v) && v >= 2)) throw new UsageError('import: --num-classes needs a whole number >= 2');
        o.numClasses = v;
        break;
      }
      default:
        if (a.startsWith('-') && a !== '-') throw new UsageError(`import: unknown option '${a}' (usage: ${USAGE})`);
        files.push(argv[i]);
    }
  }
  if (files.length !== 1) throw new UsageError(`import: give exactly one model file (got ${files.length}; usage: ${USAGE})`);
  if (!o.out) throw new UsageError(`import: --out MODEL.safetensors is required (usage: ${USAGE})`);
  return { ...o, file: files[0], out: o.out } as ImportOptions;
}

/** Converts; returns the lines to print. */
export function importModel(o: ImportOptions): string[] {
  let m: ReturnType<typeof openModel>;
  try {
    m = openModel(o.file, {
      outputs: o.outputs.length ? o.outputs : undefined,
      labels: o.labels,
      preprocessing: { size: o.size, crop: o.crop, mean: o.mean, std: o.std },
      depthMultiplier: o.depthMultiplier,
      numClasses: o.numClasses,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  try {
    saveOpenedModel(m, o.out);
  } catch (e) {
    const msg = (e as Error).message;
    throw new UsageError(msg.startsWith(o.out) ? msg : `${o.out}: ${msg}`);
  }
  const g = m.graph;
  const p = m.preprocessing;
  const values = g.paramCount();
  return [
    ...m.notes.map((n) => `note: ${n}`),
    `${o.out}: ${m.format} model ${g.name}, ${g.params.size} parameters (${values} values), input [${g.inputs[0].shape.slice(1)}]`,
    `  output '${m.output}'${m.probabilities ? ' (softmax)' : ''}, ${m.classes ? `${m.classes.length} class names` : 'no class names'}`,
    p ? `  preprocessing: ${p.kind}, ${p.size.join('x')}, crop ${p.crop}, mean ${p.mean}, std ${p.std}` : '  preprocessing: none (the input is not an RGB image)',
  ];
}

export async function importMain(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    return 0;
  }
  for (const line of importModel(parseImportArgs(argv))) console.log(line);
  return 0;
}

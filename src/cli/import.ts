// `incept import FILE --out MODEL.safetensors`: converts any model incept reads (a TF-Slim Inception
// v3 checkpoint, a frozen TensorFlow GraphDef, an ONNX model, or an incept model file) into an incept
// model file: every parameter bit for bit, the graph definition (or architecture and options), the
// class names and the preprocessing. `incept classify --model MODEL.safetensors` then gives what it
// gives on FILE. No GPU is used.
import { saveOpenedModel } from '../import/load-model.ts';
import { UsageError } from './errors.ts';
import { MODEL_OPTION_SPECS, type ModelOptions, modelOptionSpecs, modelOptionsOf, openModelFile } from './model-options.ts';
import { type OptionSpec, type Parsed, helpText, parseOptions } from './options.ts';

const USAGE =
  'incept import FILE --out MODEL.safetensors [--labels FILE] [--output NODE]... [--size HxW] [--crop F] [--mean M] [--std S] ' +
  '[--depth-multiplier X] [--num-classes N]';

const OPTIONS: OptionSpec[] = [
  { name: 'out', value: 'MODEL', needs: 'a file', help: 'the model file to write (atomically)' },
  {
    ...MODEL_OPTION_SPECS.labels,
    help: 'class names to store (one per line, or TF-Slim\'s N:label lines); default:\nX_labels.txt or labels.txt next to FILE, when it fits the classes',
  },
  {
    name: 'output',
    value: 'NODE',
    needs: 'a node name',
    multiple: true,
    help: ".pb / .onnx: a graph output (repeat for several; default: the graph's end\nnodes); the first one holds the class scores",
  },
  { ...MODEL_OPTION_SPECS.size, help: "preprocessing size (a graph's input size must match; an Inception\ncheckpoint is built at it; default 299x299)" },
  ...modelOptionSpecs('crop', 'mean', 'std'),
  { ...MODEL_OPTION_SPECS['depth-multiplier'], help: 'checkpoint: Inception v3 depth multiplier (default: from its shapes)' },
  { ...MODEL_OPTION_SPECS['num-classes'], help: 'checkpoint: classes (default: from its logits weights)' },
];

const HELP = helpText(
  USAGE,
  `Converts a model file to incept's model format (.safetensors with metadata). FILE may be a TF-Slim
Inception v3 checkpoint (V1 file, V2 prefix or .index), a frozen TensorFlow GraphDef (.pb), an ONNX
model (.onnx) or an incept model file; the format is read from the content.`,
  OPTIONS,
  `Preprocessing defaults: a GraphDef with a fixed input uses TF's retrain/label_image convention (no
crop, resize to the input, (x - 127.5) / 127.5); an Inception checkpoint TF-Slim's eval
preprocessing (crop 0.875, [-1, 1]); ONNX torchvision's ImageNet mean/std with crop 0.875.`,
);

export interface ImportOptions extends Omit<ModelOptions, 'model' | 'seed'> {
  file: string;
  out: string;
  outputs: string[];
}

export const parseImportArgs = (argv: string[]) => importOptions(parseOptions('import', USAGE, OPTIONS, argv));

function importOptions(p: Parsed): ImportOptions {
  const files = p.positionals;
  if (files.length !== 1) throw new UsageError(`import: give exactly one model file (got ${files.length}; usage: ${USAGE})`);
  const out = p.values.out as string | undefined;
  if (!out) throw new UsageError(`import: --out MODEL.safetensors is required (usage: ${USAGE})`);
  return { ...modelOptionsOf('import', p.values), file: files[0], out, outputs: (p.values.output as string[] | undefined) ?? [] };
}

/** Converts; returns the lines to print (notes first, as `incept: note: ...` like every command's). */
export function importModel(o: ImportOptions): string[] {
  const m = openModelFile(o.file, o, { outputs: o.outputs.length ? o.outputs : undefined });
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
    ...m.notes.map((n) => `incept: note: ${n}`),
    `${o.out}: ${m.format} model ${g.name}, ${g.params.size} parameters (${values} values), input [${g.inputs[0].shape.slice(1)}]`,
    `  output '${m.output}'${m.probabilities ? ' (softmax)' : ''}, ${m.classes ? `${m.classes.length} class names` : 'no class names'}`,
    p ? `  preprocessing: ${p.kind}, ${p.size.join('x')}, crop ${p.crop}, mean ${p.mean}, std ${p.std}` : '  preprocessing: none (the input is not an RGB image)',
  ];
}

export async function importMain(argv: string[]): Promise<number> {
  const p = parseOptions('import', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(HELP);
    return 0;
  }
  for (const line of importModel(importOptions(p))) console.log(line);
  return 0;
}

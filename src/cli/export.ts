// `incept export MODEL --onnx OUT.onnx`: writes any model incept reads (an incept model file, a
// fine-tuned run's model.safetensors with its new head, a checkpoint, a .pb, an .onnx, a TF.js or
// Keras model) as an ONNX model that ONNX Runtime, PyTorch or TensorFlow can serve: NCHW float32
// input with a dynamic batch, the graph's outputs under their names. Written atomically; no GPU.
import { exportOnnx, MAX_EXPORT_OPSET, MIN_EXPORT_OPSET } from '../export/onnx-export.ts';
import type { Graph } from '../graph/ir.ts';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { UsageError } from './errors.ts';
import { type ModelOptions, modelOptionSpecs, modelOptionsOf, openModelFile, resolveModel } from './model-options.ts';
import { type OptionSpec, type Parsed, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE = 'incept export MODEL --onnx OUT.onnx [--output NODE]... [--opset N] [--size HxW] [--depth-multiplier X] [--num-classes N]';

const OPTIONS: OptionSpec[] = [
  { name: 'onnx', value: 'OUT', needs: 'a file', help: 'the ONNX model file to write (atomically)' },
  {
    name: 'output',
    value: 'NODE',
    needs: 'a node name',
    multiple: true,
    help: "a value or end point to output (repeat for several; default: the graph's outputs,\ne.g. Logits and Predictions)",
  },
  {
    name: 'opset',
    value: 'N',
    help: `the ai.onnx opset to declare, ${MIN_EXPORT_OPSET}..${MAX_EXPORT_OPSET} (default ${MIN_EXPORT_OPSET})`,
    parse: wholeNumber(MIN_EXPORT_OPSET),
  },
  ...modelOptionSpecs('size', 'depth-multiplier', 'num-classes', 'seed'),
];

const HELP = helpText(
  USAGE,
  `Writes MODEL as ONNX. MODEL is any model incept reads (.safetensors from 'incept import' or
'incept train', a TF-Slim checkpoint, a frozen .pb, an .onnx, a TF.js or Keras model) or
random:inception_v3. The ONNX input is NCHW float32 named like the model's input, with a dynamic
batch dimension 'N'; 4-D outputs are NCHW too. Preprocessing is not part of the file.`,
  OPTIONS,
);

export interface ExportOptions extends Omit<ModelOptions, 'labels' | 'crop' | 'mean' | 'std'> {
  onnx: string;
  outputs: string[];
  opset: number;
}

export const parseExportArgs = (argv: string[]) => exportOptions(parseOptions('export', USAGE, OPTIONS, argv));

function exportOptions(p: Parsed): ExportOptions {
  if (p.positionals.length !== 1) throw new UsageError(`export: give exactly one model (got ${p.positionals.length}; usage: ${USAGE})`);
  const onnx = p.values.onnx as string | undefined;
  if (!onnx) throw new UsageError(`export: --onnx OUT.onnx is required (usage: ${USAGE})`);
  const opset = (p.values.opset as number | undefined) ?? MIN_EXPORT_OPSET;
  if (opset > MAX_EXPORT_OPSET) throw new UsageError(`export: --opset ${opset} is past ${MAX_EXPORT_OPSET}, the newest this exporter writes`);
  const { labels: _l, crop: _c, mean: _m, std: _s, ...model } = modelOptionsOf('export', { ...p.values, model: p.positionals[0] });
  return { ...model, onnx, outputs: (p.values.output as string[] | undefined) ?? [], opset };
}

/** The model's graph with its parameters (a file's, or random:inception_v3's), and whether its batch is fixed. */
function modelGraph(o: ExportOptions): { graph: Graph; fixedBatch: boolean } {
  const full = { ...o, labels: null, crop: null, mean: null, std: null };
  if (o.model.startsWith('random:')) return { graph: resolveModel('export', full, 'the exported file has random weights').graph(), fixedBatch: false };
  const m = openModelFile(o.model, full, { outputs: o.outputs.length ? o.outputs : undefined });
  return { graph: m.graph, fixedBatch: m.fixedBatch !== undefined };
}

/** Exports; returns the lines to print. */
export function exportModel(o: ExportOptions): string[] {
  const { graph: g, fixedBatch } = modelGraph(o);
  let bytes: Uint8Array;
  try {
    bytes = exportOnnx(g, { outputs: o.outputs.length ? o.outputs : undefined, opset: o.opset, fixedBatch });
  } catch (e) {
    throw new UsageError(`${o.model}: ${(e as Error).message}`);
  }
  try {
    writeFileAtomic(o.onnx, [bytes]);
  } catch (e) {
    const msg = (e as Error).message;
    throw new UsageError(msg.startsWith(o.onnx) ? msg : `${o.onnx}: ${msg}`);
  }
  const [batch, ...rest] = g.inputs[0].shape;
  const dims = rest.length === 3 ? [rest[2], rest[0], rest[1]] : rest; // NCHW in the file
  const outs = (o.outputs.length ? o.outputs : g.outputs).map((v) => (g.has(v) ? v : g.endPoint(v))); // the names in the file
  return [`${o.onnx}: ONNX opset ${o.opset}, ${bytes.byteLength} bytes, input '${g.inputs[0].name}' [${[fixedBatch ? batch : 'N', ...dims]}], outputs ${outs.map((v) => `'${v}'`).join(', ')}`];
}

export async function exportMain(argv: string[]): Promise<number> {
  const p = parseOptions('export', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(HELP);
    return 0;
  }
  for (const line of exportModel(exportOptions(p))) console.log(line);
  return 0;
}

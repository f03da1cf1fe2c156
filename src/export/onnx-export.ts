// exportOnnx: an engine Graph as an ONNX ModelProto (opset 13..17) that ONNX Runtime, PyTorch or
// TensorFlow can run. The input is NCHW with a dynamic batch dimension 'N'; every rank-4 value is
// NCHW inside the file (onnx-emitter.ts says how layouts are kept apart); parameters are float32
// initializers named as in the engine; outputs keep their engine value names.
import type { Graph, Node } from '../graph/ir.ts';
import { onnxMessageType } from '../import/onnx-proto.ts';
import { EXPORTERS } from './onnx-export-ops.ts';
import { NHWC_AXIS, OnnxEmitter } from './onnx-emitter.ts';

export interface ExportOnnxOptions {
  /** Values or end points to output (default: the graph's outputs, e.g. Logits and Predictions). */
  outputs?: string[];
  /** The ai.onnx opset to declare (13..17: the ops written here mean the same in all of them). */
  opset?: number;
  /** Keep the graph's batch size in the file (for graphs that only run at it); default: dynamic 'N'. */
  fixedBatch?: boolean;
}

export const MIN_EXPORT_OPSET = 13;
export const MAX_EXPORT_OPSET = 17;
const IR_VERSION = 8; // ONNX 1.10+: opsets up to 17 load in every runtime that reads IR 8

/** The value names to output: values as given, end points resolved to their values. */
function outputValues(g: Graph, outputs: string[] | undefined): string[] {
  const names = outputs?.length ? outputs : g.outputs;
  if (names.length === 0) throw new Error(`graph ${g.name}: no outputs to export`);
  return names.map((n) => (g.has(n) ? n : g.endPoint(n)));
}

/** The nodes the outputs depend on, in graph order. */
function neededNodes(g: Graph, outputs: string[]): Node[] {
  const needed = new Set<string>();
  const stack = [...outputs];
  while (stack.length) {
    const v = stack.pop()!;
    const n = g.producer(v);
    if (!n || needed.has(n.name)) continue;
    needed.add(n.name);
    stack.push(...n.inputs);
  }
  return g.nodes.filter((n) => needed.has(n.name));
}

/** ONNX value info: float32, a leading dim equal to `batch` symbolic ('N'), rank-4 dims in NCHW order. */
function valueInfo(name: string, shape: readonly number[], batch: number | null): object {
  const dims = shape.length === 4 ? NHWC_AXIS.map((a) => shape[a]) : [...shape];
  const dim = dims.map((d, i) => (i === 0 && d === batch ? { dimParam: 'N' } : { dimValue: d }));
  return { name, type: { tensorType: { elemType: 1, shape: { dim } } } };
}

/** Serializes `graph` (parameters' host data included) as an ONNX model. */
export function exportOnnx(graph: Graph, opts: ExportOnnxOptions = {}): Uint8Array {
  const opset = opts.opset ?? MIN_EXPORT_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_EXPORT_OPSET || opset > MAX_EXPORT_OPSET) {
    throw new Error(`ONNX export of ${graph.name}: opset ${opset} is not supported (${MIN_EXPORT_OPSET}..${MAX_EXPORT_OPSET})`);
  }
  if (graph.inputs.length !== 1) throw new Error(`ONNX export of ${graph.name}: the graph has ${graph.inputs.length} inputs; one is exported`);
  const outputs = outputValues(graph, opts.outputs);
  const nodes = neededNodes(graph, outputs);
  const unsupported = nodes.filter((n) => !EXPORTERS[n.op]);
  if (unsupported.length) {
    throw new Error(`ONNX export of ${graph.name}: no ONNX mapping for ${unsupported.length} node(s): ${unsupported.map((n) => `${n.name} (${n.op})`).join(', ')}`);
  }
  const e = new OnnxEmitter(graph);
  for (const n of nodes) {
    try {
      (EXPORTERS[n.op] as (e: OnnxEmitter, n: Node) => void)(e, n);
    } catch (err) {
      const msg = (err as Error).message;
      throw new Error(`ONNX export of ${graph.name}: ${msg.startsWith(n.name) ? msg : `${n.name} (${n.op}): ${msg}`}`);
    }
  }
  const input = graph.inputs[0];
  const batch = opts.fixedBatch ? null : input.shape[0];
  for (const v of outputs) {
    if (graph.params.has(v) || v === input.name) throw new Error(`ONNX export of ${graph.name}: output ${v} is not computed by a node`);
  }
  const model = {
    irVersion: IR_VERSION,
    producerName: 'incept',
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: graph.name,
      node: e.nodes,
      initializer: e.initializers,
      input: [valueInfo(input.name, input.shape, batch)],
      output: outputs.map((v) => valueInfo(v, graph.shapeOf(v), batch)),
    },
  };
  const type = onnxMessageType('ModelProto');
  return type.encode(type.fromObject(model)).finish();
}

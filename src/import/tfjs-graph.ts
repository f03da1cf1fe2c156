// TensorFlow.js graph models (tfjs-converter's 'graph-model' format): model.json holds a GraphDef
// in protobuf's JSON mapping (`modelTopology`: node, library, versions) whose Const nodes carry
// only dtype and shape; their values are the weightsManifest entries of the same name
// (tfjs-weights.ts, float32 / int32 / quantized). The values are put back into the Consts and the
// GraphDef goes through the frozen-GraphDef importer (graphdef.ts), which also knows the
// converter's fused ops (_FusedConv2D, FusedDepthwiseConv2dNative, _FusedMatMul).
import { encodeTfMessage } from './tf-proto.ts';
import { type TfjsFiles, readTfjsWeights } from './tfjs-weights.ts';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface JsonNode {
  name?: string;
  op?: string;
  attr?: Record<string, Record<string, unknown>>;
}

/** The manifest's dtype of a weight -> TF's DataType enum name and bytes of its values. */
function tensorOf(dtype: string, shape: number[], data: Float32Array): Record<string, unknown> {
  const tensorShape = { dim: shape.map((size) => ({ size })) };
  if (dtype === 'int32') return { dtype: 'DT_INT32', tensorShape, tensorContent: new Uint8Array(Int32Array.from(data).buffer) };
  return { dtype: 'DT_FLOAT', tensorShape, tensorContent: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** The GraphDef bytes of a TF.js graph model (its weights, from `files`, put back into the Consts); errors name the file. */
export function tfjsGraphDef(path: string, json: Record<string, unknown>, files: TfjsFiles): Uint8Array {
  const topo = json.modelTopology;
  if (!isRecord(topo) || !Array.isArray(topo.node)) throw new Error(`${path}: a graph model's modelTopology has no node list`);
  const weights = readTfjsWeights(path, json.weightsManifest ?? [], files);
  const dtypes = new Map<string, string>();
  for (const g of (json.weightsManifest as { weights?: { name: string; dtype: string }[] }[]) ?? []) for (const w of g.weights ?? []) dtypes.set(w.name, w.dtype);
  const used = new Set<string>();
  const nodes = (topo.node as JsonNode[]).map((n, i) => {
    if (!isRecord(n) || typeof n.name !== 'string') throw new Error(`${path}: modelTopology.node[${i}] has no name`);
    const w = weights.get(n.name);
    if (n.op !== 'Const' || !w) return n;
    used.add(n.name);
    const dtype = dtypes.get(n.name) ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'int32') throw new Error(`${path}: weight '${n.name}' has dtype ${dtype}; float32 and int32 constants only`);
    const attr = { ...(n.attr ?? {}), value: { tensor: tensorOf(dtype, w.shape, w.data) }, dtype: { type: dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT' } };
    return { ...n, attr };
  });
  const unused = [...weights.keys()].filter((k) => !used.has(k));
  if (unused.length > 0) throw new Error(`${path}: ${unused.length} weights name no Const node of the graph (${unused.slice(0, 3).join(', ')}${unused.length > 3 ? ', ...' : ''})`);
  try {
    return encodeTfMessage('GraphDef', { node: nodes, ...(isRecord(topo.versions) ? { versions: topo.versions } : {}) });
  } catch (e) {
    throw new Error(`${path}: modelTopology is not a GraphDef in protobuf's JSON form (${(e as Error).message})`);
  }
}

/** Output node names a graph model declares (its signature), if any. */
export function tfjsGraphOutputs(json: Record<string, unknown>): string[] | undefined {
  const sig = (json.signature ?? (isRecord(json.userDefinedMetadata) ? json.userDefinedMetadata.signature : undefined)) as unknown;
  if (!isRecord(sig) || !isRecord(sig.outputs)) return undefined;
  const names = Object.values(sig.outputs).map((o) => (isRecord(o) && typeof o.name === 'string' ? o.name.replace(/:0$/, '') : null));
  return names.every((n): n is string => n !== null) && names.length > 0 ? names : undefined;
}

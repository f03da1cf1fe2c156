// Saying where a damaged frozen GraphDef or ONNX model is damaged: protobufjs says only that the
// bytes are corrupt; a wire-level walk of the graph's repeated fields names the node (or
// initializer, input, ...) the damage is in, or the last complete one before a cut.
import { onnxMessageType as onnxType } from './onnx-proto.ts';
import { type WireField, openField, stringField, wireFields } from './protobuf.ts';
import { tfMessageType } from './tf-proto.ts';

/**
 * Which element of a damaged GraphDef / ONNX model the damage is in, in words: "node 12
 * ('conv1/weights') is damaged (...)", or the last complete element before a cut. null if not found.
 */
export function locateProtobufDamage(b: Uint8Array, format: 'graphdef' | 'onnx'): string | null {
  // Element kinds: the repeated field, its name fields (ONNX nodes often have only outputs), the type.
  const kinds =
    format === 'graphdef'
      ? [{ kind: 'node', field: 1, names: [1], type: tfMessageType('NodeDef') }]
      : [
          { kind: 'node', field: 1, names: [3, 2], type: onnxType('NodeProto') },
          { kind: 'initializer', field: 5, names: [8], type: onnxType('TensorProto') },
          { kind: 'graph input', field: 11, names: [1], type: onnxType('ValueInfoProto') },
          { kind: 'graph output', field: 12, names: [1], type: onnxType('ValueInfoProto') },
          { kind: 'value_info', field: 13, names: [1], type: onnxType('ValueInfoProto') },
        ];
  const label = (f: WireField, names: number[]) => {
    for (const n of names) {
      const v = stringField(b, f, n);
      if (v) return `'${v}'`;
    }
    return null;
  };
  /** Looks at one message level (the GraphDef, or the ONNX GraphProto) from `from` to `to`. */
  const level = (from: number, to: number, cut: boolean): string | null => {
    const { fields, broken } = wireFields(b, from, to);
    if (broken !== null || cut) {
      const last = [...fields].reverse().find((f) => kinds.some((k) => k.field === f.num && f.wire === 2));
      const k = last && kinds.find((x) => x.field === last.num)!;
      const index = last ? fields.filter((f) => f.num === last.num && f.wire === 2).length - 1 : -1;
      const after = last && k ? `, after ${k.kind} ${index}${label(last, k.names) ? ` (${label(last, k.names)})` : ''}` : '';
      // The element the break is in, when its start is readable.
      const open = broken !== null ? openField(b, broken) : null;
      const kind = open && kinds.find((x) => x.field === open.num);
      const inside = kind ? ` in ${kind.kind} ${fields.filter((f) => f.num === kind.field && f.wire === 2).length}` : '';
      return `the ${format === 'graphdef' ? 'file' : 'graph'} is cut or damaged at byte ${broken ?? b.length}${inside}${after}`;
    }
    for (const k of kinds) {
      const list = fields.filter((f) => f.num === k.field && f.wire === 2);
      for (let i = 0; i < list.length; i++) {
        try {
          k.type.decode(b.subarray(list[i].start, list[i].end));
        } catch (e) {
          const name = label(list[i], k.names) ?? (i > 0 && label(list[i - 1], k.names) ? `the one after ${label(list[i - 1], k.names)}` : null);
          return `${k.kind} ${i}${name ? ` (${name})` : ''} is damaged (${(e as Error).message})`;
        }
      }
    }
    return null;
  };
  if (format === 'graphdef') return level(0, b.length, false);
  const top = wireFields(b);
  const graph = top.fields.find((f) => f.num === 7 && f.wire === 2);
  if (graph) return level(graph.start, graph.end, false) ?? (top.broken !== null ? `the file is cut or damaged at byte ${top.broken}` : null);
  if (top.broken === null) return null;
  const open = openField(b, top.broken);
  return open?.num === 7 ? level(open.start, b.length, true) : `the file is cut or damaged at byte ${top.broken}`;
}

/** Adds where the damage is to a protobuf decoding error of a GraphDef / ONNX file. */
export function withDamageLocation<T>(path: string, format: 'graphdef' | 'onnx', bytes: () => Uint8Array, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const msg = (e as Error).message;
    if (!/corrupt or truncated protobuf/.test(msg)) throw e;
    let where: string | null = null;
    try {
      where = locateProtobufDamage(bytes(), format);
    } catch {
      where = null; // the diagnosis is best effort; the decoder's message stands
    }
    throw new Error(where ? `${msg}: ${where}` : msg);
  }
}


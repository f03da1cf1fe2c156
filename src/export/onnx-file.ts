// exportOnnx to a file, written atomically (Node only; exportOnnx itself also runs in a page).
import type { Graph } from '../graph/ir.ts';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { type ExportOnnxOptions, exportOnnx } from './onnx-export.ts';

/** Writes `graph` as an ONNX model at `path` (atomically); returns the byte count. */
export function exportOnnxFile(graph: Graph, path: string, opts: ExportOnnxOptions = {}): number {
  const bytes = exportOnnx(graph, opts);
  writeFileAtomic(path, [bytes]);
  return bytes.byteLength;
}

// What the ONNX importer's modules share: how an imported value's data relates to its ONNX value
// (its layout), the error for what the engine deliberately does not import, and attribute readers.
import type { OnnxNode } from './onnx-proto.ts';

/** How an imported value's data relates to the ONNX value of the same name. */
export type Layout =
  | { kind: 'same' } // identical shape and order
  | { kind: 'nhwc' } // ONNX [N, C, H, W] held as [N, H, W, C]
  | { kind: 'flat'; c: number; h: number; w: number } // ONNX [N, C*H*W] held in H, W, C order
  | { kind: 'nhw' }; // ONNX [N, H, W] (one channel taken out of an NCHW map) held as [N, H, W, 1]

export interface Value {
  ir: string; // the IR value name
  layout: Layout;
  onnx: number[]; // the ONNX shape
}

export const SAME: Layout = { kind: 'same' };
export const NHWC: Layout = { kind: 'nhwc' };
/** ONNX axis of a rank-4 NCHW value -> the NHWC axis holding it. */
export const NCHW_AXIS_TO_NHWC = [0, 3, 1, 2];

/** A node the importer refuses on purpose (an op, attribute or layout it does not have); the message says which. */
export class ImportError extends Error {}

/** The importer's refusal, naming the file and node: callers can tell "not supported" from a broken model. */
export class OnnxUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxUnsupportedError';
  }
}

export function int(node: OnnxNode, name: string, dflt: number): number {
  const a = node.attributes[name];
  return a?.type === 'int' ? a.value : dflt;
}
export function float(node: OnnxNode, name: string, dflt: number): number {
  const a = node.attributes[name];
  return a?.type === 'float' || a?.type === 'int' ? a.value : dflt;
}
export function ints(node: OnnxNode, name: string): number[] | undefined {
  const a = node.attributes[name];
  return a?.type === 'ints' ? a.value : undefined;
}
export function str(node: OnnxNode, name: string, dflt: string): string {
  const a = node.attributes[name];
  return a?.type === 'string' ? a.value : dflt;
}

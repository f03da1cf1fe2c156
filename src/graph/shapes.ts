// Shape inference, run as each node is added: the op's rule (ops/) says the output shape, or
// throws a message naming the op and the shapes; Graph.addNode prefixes the node name.
import type { Shape } from '../gpu/tensor.ts';
import type { Op, OpAttrMap } from './ir.ts';
import { ruleOf } from './ops/index.ts';

export type ShapeRule<K extends Op> = (inputs: Shape[], attrs: OpAttrMap[K]) => number[];

const overrides = new Map<string, ShapeRule<Op>>();

/** Replaces the shape rule of an op (tests; a new op registers a whole rule with registerOp). */
export function registerShapeRule<K extends Op>(op: K, rule: ShapeRule<K>): void {
  overrides.set(op, rule as unknown as ShapeRule<Op>);
}

/** The output shape of `op` on inputs of these shapes; throws naming the op and the shapes. */
export function inferShape<K extends Op>(op: K, inputs: Shape[], attrs: OpAttrMap[K]): number[] {
  const override = overrides.get(op) as ShapeRule<K> | undefined;
  return override ? override(inputs, attrs) : ruleOf(op).shape(inputs, attrs);
}

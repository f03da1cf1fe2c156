// The registry: every op of the IR and its rule (shape, CPU reference, forward and backward
// lowering). Shape inference, the reference interpreter and the compiler all look ops up here.
import type { Op } from '../ir.ts';
import { batchnorm } from './batchnorm.ts';
import { class_loss } from './class_loss.ts';
import { conv2d } from './conv2d.ts';
import { conv_transpose } from './conv_transpose.ts';
import { ELEMENTWISE } from './elementwise.ts';
import { ONNX_OPS } from './onnx_ops.ts';
import { POOLS } from './pool.ts';
import type { OpRule } from './rule.ts';
import { TENSOR_OPS } from './tensor_ops.ts';

export const RULES: { [K in Op]: OpRule<K> } = { conv2d, batchnorm, ...ELEMENTWISE, ...POOLS, ...TENSOR_OPS, ...ONNX_OPS, class_loss, conv_transpose };

export function ruleOf<K extends Op>(op: K): OpRule<K> {
  const rule = RULES[op] as OpRule<K> | undefined;
  if (!rule) throw new Error(`no rule for op '${op}'`);
  return rule;
}

/** Adds or replaces an op's rule (a module that augments OpAttrMap registers its op here). */
export function registerOp<K extends Op>(op: K, rule: OpRule<K>): void {
  (RULES as Record<string, unknown>)[op] = rule;
}

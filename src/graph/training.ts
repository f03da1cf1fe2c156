// A training step (or a gradient program for saliency) is the one compiler (compiler.ts) with a
// loss: forward with batchnorm in training mode where its layer trains and frozen layers lowered
// as at inference (folded batchnorm, fused epilogue), the loss fused with its gradient, and the
// backward of every group that needs a gradient. The trainer adds the optimizer's update.
import type { Runtime } from '../gpu/runtime.ts';
import { type CompileOptions, type Lowered, lowerGraph } from './compiler.ts';
import type { Graph } from './ir.ts';
import type { ParamStore } from './param_store.ts';

export type { Group } from './ops/rule.ts';

export type TrainingConfig = Omit<CompileOptions, 'outputs' | 'fuse'>;
export type TrainingProgram = Lowered;

export function buildTraining(rt: Runtime, graph: Graph, params: ParamStore, cfg: TrainingConfig = {}): TrainingProgram {
  return lowerGraph(rt, graph, params, { ...cfg, loss: cfg.loss ?? 'softmax_cross_entropy' });
}

// incept's library entry: the public API for embedders. Everything here runs on WebGPU (Dawn);
// call closeRuntime() when done so the process can exit.

// GPU runtime, tensors, dispatch recording, timing
export { GpuError, Runtime, closeRuntime, getRuntime, type AdapterDescription } from './gpu/runtime.ts';
export { Tensor, empty, upload, sizeOf, shapeString, type DType, type Shape } from './gpu/tensor.ts';
export { Params, grid, run, type Dispatch } from './gpu/recorder.ts';
export { PassTimer, measure, median, type Measurement, type TimingMethod } from './gpu/timing.ts';

// Kernels: one module per op family (shape rule, dispatch builder, eager op, CPU reference)
export * from './kernels/padding.ts';
export * from './kernels/conv2d.ts';
export * from './kernels/matmul.ts';
export * from './kernels/batchnorm.ts';
export * from './kernels/unary.ts';
export * from './kernels/binary.ts';
export * from './kernels/pool.ts';
export * from './kernels/softmax.ts';
export * from './kernels/concat.ts';
export * from './kernels/reduce.ts';
export * from './kernels/transpose.ts';
export * from './kernels/pad.ts';
export * from './kernels/shape.ts';

// Graphs, models and their execution
export { Model, type PredictOptions } from './graph/model.ts';
export { inceptionV3, type InceptionV3Options } from './graph/models/inception_v3.ts';
export { Graph, type Node, type Op } from './graph/ir.ts';
export { GraphBuilder } from './graph/builder.ts';
export { compile, Plan, ParamStore, type CompileOptions } from './graph/executor.ts';

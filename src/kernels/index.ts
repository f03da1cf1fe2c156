// incept/kernels: the kernel layer for engineers who benchmark or extend kernels. Each op family's
// shape rule, Dispatch builder, eager wrapper and float64 CPU reference, the tuning overrides, and
// the recording and timing tools. The library surface (models, training, saliency) is 'incept'.
export { GpuError, Runtime, closeRuntime, getRuntime, type AdapterDescription } from '../gpu/runtime.ts';
export { Tensor, empty, upload, sizeOf, shapeString, type DType, type Shape } from '../gpu/tensor.ts';
export { Params, grid, run, prepare, encodePass, type Dispatch, type PreparedDispatch } from '../gpu/recorder.ts';
export { PassTimer, measure, median, type Measurement, type TimingMethod } from '../gpu/timing.ts';
export { ACTIVATION_CODE, type EpilogueActivation } from './activation.ts';
export * from './padding.ts';
export * from './conv2d.ts';
export * from './conv2d_backward.ts';
export * from './variants.ts';
export { registerVariant, variantNamed, variantsIn, variantsOf } from './registry.ts';
export { KERNEL_VERSION, adapterKey, chooseVariant, forgetTuning, recordChoices, type Choice, type ChoiceRecord, type ChoiceSource } from './choice.ts';
export { autotuneEnabled, tuneCalls, untunedCalls, withinReorder, type TuneOptions, type TuneResult } from './tuner.ts';
export * from './matmul.ts';
export * from './batchnorm.ts';
export * from './batchnorm_train.ts';
export * from './unary.ts';
export * from './binary.ts';
export * from './pool.ts';
export * from './pool_backward.ts';
export * from './softmax.ts';
export * from './concat.ts';
export * from './reduce.ts';
export * from './transpose.ts';
export * from './pad.ts';
export * from './shape.ts';
export * from './loss.ts';
export * from './dropout.ts';

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
export { GRAPH_FORMAT, checkSerializedGraph, deserializeGraph, serializeGraph, type SerializedGraph } from './graph/serialize.ts';

// Model files: one loader for every format (.safetensors, TF checkpoints, frozen GraphDef, ONNX)
export * from './import/load-model.ts';
export {
  ARCHITECTURES,
  SafetensorsError,
  applyModelTensors,
  buildArchitecture,
  convertCheckpoint,
  decodeModelMeta,
  decodeSafetensors,
  encodeModelMeta,
  encodeSafetensors,
  inceptionPreprocessing,
  loadSafetensors,
  saveModel,
  saveSafetensors,
  loadModel as loadModelFile,
  type ConvertOptions,
  type LoadedModel as LoadedModelFile,
  type ModelMeta,
  type SafeDType,
  type SafeTensor,
  type SafetensorsFile,
  type SaveableTensor,
} from './import/safetensors.ts';
export * from './import/load.ts';
export { writeCheckpointV1, writeCheckpointV2, type CheckpointWriteOptions, type WritableTensor } from './import/tf-checkpoint-write.ts';
export { importGraphDef, graphDefBuilder, parseGraphDef, type GraphDefImportOptions } from './import/graphdef.ts';
export { importOnnx, importOnnxDetailed, onnxModelBuilder, OnnxUnsupportedError, SUPPORTED_ONNX_OPS, type OnnxImport, type OnnxImportOptions } from './import/onnx-model.ts';
export { OnnxFormatError, decodeModel as decodeOnnxModel, readModel as readOnnxModel, readTensor as readOnnxTensor, type OnnxModel, type OnnxTensor } from './import/onnx-proto.ts';
export { TfFormatError } from './import/tf-proto.ts';
export { fetchWeights, readManifest as readWeightsManifest, type FetchOptions, type FetchResult, type Manifest } from './import/weights-fetch.ts';

// Images: decoding (JPEGs as TensorFlow decodes them) and preprocessing
export * from './image/decode.ts';
export * from './image/jpeg.ts';
export * from './image/preprocess.ts';

// Training: datasets, batches, augmentation, optimizers, schedules, the trainer, metrics
export * from './train/dataset.ts';
export * from './train/loader.ts';
export * from './train/augment.ts';
export * from './train/optimizers.ts';
export * from './train/schedules.ts';
export * from './train/trainer.ts';
export * from './train/metrics.ts';
export * from './train/roc.ts';
export * from './train/taxonomy.ts';

// Transfer learning, saliency and reports
export { fineTune, validate, type FineTuneOptions, type FineTuneResult } from './train/finetune.ts';
export { replaceHead, randomInception, loadPretrained, saveTransferModel, type TransferModel } from './train/head.ts';
export { trainableParams, trainablePredicate, type FreezeSpec } from './train/freeze.ts';
export { saliency, disposeSaliency, type SaliencyOptions, type SaliencyResult } from './explain/saliency.ts';
export { overlay, colorize, toDisplayImage, encodePng } from './explain/heatmap.ts';
export { renderReport, writeReport, type ReportData } from './report/html.ts';
export { buildEvaluationReport } from './report/evaluate-report.ts';
export { runDemo } from './demo/run.ts';

/// <reference types="@webgpu/types" />
// incept's library entry: the public API for embedders (model files, predict and classify,
// fine-tuning, evaluation, saliency, reports). Everything here runs on WebGPU (Dawn); call
// closeRuntime() when done so the process can exit. Kernels and their references: 'incept/kernels'.

// The GPU runtime and tensors (kernels, their CPU references and tuning knobs: 'incept/kernels')
export { GpuError, Runtime, closeRuntime, getRuntime, type AdapterDescription } from './gpu/runtime.ts';
export { Tensor, empty, upload, type DType, type Shape } from './gpu/tensor.ts';

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
export { exportOnnx, MAX_EXPORT_OPSET, MIN_EXPORT_OPSET, type ExportOnnxOptions } from './export/onnx-export.ts';
export { exportOnnxFile } from './export/onnx-file.ts';
export { fetchWeights, readManifest as readWeightsManifest, type FetchOptions, type FetchResult, type Manifest } from './import/weights-fetch.ts';

// The short path: a model file and images to labelled predictions (decoding, preprocessing, softmax)
export { classify, type ImageInput } from './classify.ts';
export { classifyImages, topClasses, type Prediction } from './predict.ts';
export { trainHead, type HeadTrainingOptions } from './train/head-training.ts';

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
export { openBackbone, backboneModel, backboneFeatures, type Backbone } from './train/backbones.ts';
export { saveKerasBackbone, mapKerasInceptionV3 } from './import/keras-inception-v3.ts';
export { trainOnFeatures, pooledHeadGraph } from './train/feature-training.ts';
export { runEsteva, runGulshan } from './train/transfer-experiments.ts';
export { estevaFigures, gradeFigures, operatingPoint, rocBand, sanityWarnings } from './train/transfer-eval.ts';
export { isicSplit, readRetinaMnist, readNpz } from './train/medical-data.ts';

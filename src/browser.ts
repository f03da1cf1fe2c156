/// <reference types="@webgpu/types" />
// incept's entry for pages (bundled by `npm run build` into dist/browser/incept.js): the engine's
// core as in Node (runtime on navigator.gpu, kernels, graphs, importers reading bytes, training,
// saliency, figures), with files given as bytes or Blobs instead of paths. Nothing here may import
// Node (the build fails if it does).
import type { DecodedImage } from './image/decode.ts';
import { type LoadModelOptions, type LoadedModel, loadModelBytes, loadModelFiles as loadModelFileMap } from './import/load-model.ts';
import { decodeImageBlob } from './platform/browser-image.ts';
import { type Prediction, classifyImages } from './predict.ts';

export { GpuError, Runtime, closeRuntime, getRuntime, type AdapterDescription } from './gpu/runtime.ts';
export { Tensor, empty, upload, sizeOf, shapeString, type DType, type Shape } from './gpu/tensor.ts';
export { Params, grid, run, type Dispatch } from './gpu/recorder.ts';
export { HOST } from './platform/host.ts';

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

export { Model, type PredictOptions } from './graph/model.ts';
export { inceptionV3, type InceptionV3Options } from './graph/models/inception_v3.ts';
export { Graph, type Node, type Op } from './graph/ir.ts';
export { GraphBuilder } from './graph/builder.ts';
export { compile, Plan, ParamStore, type CompileOptions } from './graph/executor.ts';

export {
  alignLabels,
  detectModelFormatBytes,
  loadModelBytes,
  openModelBytes,
  openModelFiles,
  parseLabels,
  type LoadModelOptions,
  type LoadedModel,
  type ModelFormat,
  type OpenedModel,
} from './import/load-model.ts';
export { SafetensorsError, decodeSafetensors, encodeSafetensors } from './import/safetensors.ts';
export { importOnnx } from './import/onnx-model.ts';
export { OnnxFormatError, decodeModel as decodeOnnxModel } from './import/onnx-proto.ts';
export { importGraphDef } from './import/graphdef.ts';

export { detectFormat as detectImageFormat, type DecodedImage } from './image/decode.ts';
export { decodeJpegIfast } from './image/jpeg.ts';
export * from './image/preprocess.ts';
export { decodeImageBlob, bitmapToRgb } from './platform/browser-image.ts';
export { classifyImages, topClasses, type Prediction } from './predict.ts';

export { Trainer, type TrainerOptions, type StepResult } from './train/trainer.ts';
export { trainHead, type HeadTrainingOptions } from './train/head-training.ts';
export { replaceHead, randomInception, type TransferModel, type BaseModel } from './train/head.ts';
export { trainablePredicate, type FreezeSpec } from './train/freeze.ts';
export * from './train/metrics.ts';
export * from './train/roc.ts';
export { saliency, disposeSaliency, type SaliencyOptions, type SaliencyResult } from './explain/saliency.ts';
export { overlay, colorize, toDisplayImage, type RgbImage } from './explain/heatmap.ts';
export { rocCurveFigure, trainingCurvesFigure, confusionMatrixFigure } from './report/figures.ts';
// A model (fine-tuned in the page: Model.syncToHost() first) as ONNX bytes, e.g. for a download link.
export { exportOnnx, MAX_EXPORT_OPSET, MIN_EXPORT_OPSET, type ExportOnnxOptions } from './export/onnx-export.ts';

/**
 * A model file (.safetensors, .onnx, .pb) chosen in a page, on the GPU. Errors name the file; a
 * TF.js model.json alone is an error saying to pass its shards too (loadModelFiles).
 */
export async function loadModel(file: Blob, opts: LoadModelOptions & { name?: string } = {}): Promise<LoadedModel> {
  const name = opts.name ?? (file as File).name ?? 'model';
  return loadModelBytes(new Uint8Array(await file.arrayBuffer()), name, opts);
}

/**
 * A TF.js model (layers or graph model.json with its weight shards group1-shard1ofN ...) from the
 * files chosen in a page (an <input type=file multiple>), on the GPU. Shards are found by their
 * names; errors name the missing or extra file.
 */
export async function loadModelFiles(files: Iterable<Blob>, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const bytes = new Map<string, Uint8Array>();
  for (const file of files) {
    const name = (file as File).name;
    if (!name) throw new Error('loadModelFiles: a file without a name (give File objects, or Blobs named as model.json names them)');
    bytes.set(name, new Uint8Array(await file.arrayBuffer()));
  }
  return loadModelFileMap(bytes, opts);
}

/** Top `top` predictions for each image (a File/Blob of PNG or JPEG bytes, or a decoded image). */
export async function classify(model: LoadedModel, images: Blob | DecodedImage | (Blob | DecodedImage)[], opts: { top?: number } = {}): Promise<Prediction[][]> {
  const list = Array.isArray(images) ? images : [images];
  const decoded = await Promise.all(list.map((x) => (x instanceof Blob ? decodeImageBlob(x) : x)));
  return classifyImages(model, decoded, opts.top ?? 5);
}

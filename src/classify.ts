// `classify` for Node: image files (or their bytes, or decoded images) to labelled predictions.
//   const model = await loadModel('mobilenet_v1.pb');
//   const [top] = await classify(model, 'cat.jpg');   // [{ index, label, prob }, ...] best first
import { type DecodedImage, decodeImage, readImage } from './image/decode.ts';
import type { LoadedModel } from './import/load-model.ts';
import { type Prediction, classifyImages } from './predict.ts';

export type ImageInput = string | Uint8Array | DecodedImage;

const decode = (x: ImageInput, i: number): DecodedImage =>
  typeof x === 'string' ? readImage(x) : x instanceof Uint8Array ? decodeImage(x, `image ${i + 1}`) : x;

/** Top `top` predictions for each image (a path, PNG/JPEG bytes or a decoded image). */
export async function classify(model: LoadedModel, images: ImageInput | ImageInput[], opts: { top?: number } = {}): Promise<Prediction[][]> {
  const list = Array.isArray(images) ? images : [images];
  return classifyImages(model, list.map(decode), opts.top ?? 5);
}

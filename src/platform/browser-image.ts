// Image decoding in a page. JPEGs go through the engine's own decoder (libjpeg's IFAST IDCT, so a
// network sees the pixels TensorFlow's decode_jpeg gives, as in Node); PNG, and the JPEG kinds that
// decoder does not handle (progressive, CMYK), are decoded by the browser. Alpha is dropped, not
// composited, as in Node: the canvas is read without premultiplying.
import { type DecodedImage, detectFormat } from '../image/decode.ts';
import { decodeJpegIfast } from '../image/jpeg.ts';

/** Decodes a PNG or JPEG file (a File or Blob) to RGB 0..255 floats; errors name the file. */
export async function decodeImageBlob(blob: Blob, name = (blob as File).name ?? 'image'): Promise<DecodedImage> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const format = detectFormat(bytes, name); // refuses GIF, WebP, ... by name, as in Node
  if (format === 'jpeg') {
    try {
      return decodeJpegIfast(bytes, name);
    } catch {
      // Not a baseline JPEG the TF-exact decoder reads: the browser's decoder below.
    }
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]), { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch (e) {
    throw new Error(`${name}: corrupt or truncated ${format.toUpperCase()} file (the browser could not decode it: ${(e as Error).message})`);
  }
  return bitmapToRgb(bitmap, name);
}

/** The RGB pixels of a bitmap (closed afterwards). */
export function bitmapToRgb(bitmap: ImageBitmap, name = 'image'): DecodedImage {
  const { width, height } = bitmap;
  if (!(width > 0 && height > 0)) throw new Error(`${name}: image has no pixels (${width}x${height})`);
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error(`${name}: this browser has no 2D canvas to read the image's pixels`);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Float32Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    data[p * 3] = rgba[p * 4];
    data[p * 3 + 1] = rgba[p * 4 + 1];
    data[p * 3 + 2] = rgba[p * 4 + 2];
  }
  return { width, height, data };
}

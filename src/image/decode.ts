// Image decoding: PNG (pngjs) and JPEG bytes to RGB floats 0..255, height x width x 3
// (HWC). The format is decided by the file's magic bytes, never its extension. Anything that is
// not a decodable PNG or JPEG raises an Error that names the file and says what is wrong.
//
// Colour handling, chosen to match TensorFlow's decode_png / decode_jpeg with channels=3 (what
// TF-Slim's input pipelines use):
//   - alpha is DROPPED (not composited): a transparent pixel keeps its stored colour. This covers
//     RGBA, grayscale+alpha, palette entries with tRNS alpha and tRNS colour keys;
//   - grayscale is replicated to R = G = B;
//   - 16-bit samples keep their precision (v * 255 / 65535, so values may be fractional);
//     1/2/4-bit grayscale is scaled the same way (v * 255 / (2^depth - 1));
//   - JPEG: decoded like TF's decode_jpeg by default: baseline / extended sequential files go
//     through decodeJpegIfast (libjpeg's integer fast IDCT and fancy upsampling, what TF uses, so
//     a network sees TF's exact pixels). Files that decoder does not support (progressive,
//     arithmetic-coded, 12-bit, CMYK, unusual chroma sampling) fall back to jpeg-js, whose
//     accurate IDCT differs from TF's by a few levels per pixel. jpeg-js also converts Adobe
//     CMYK / YCCK (4 components, APP14 marker); 4-component JPEGs without the Adobe marker and
//     2-component JPEGs are refused. `{ jpeg: 'jpeg-js' }` forces jpeg-js (for comparisons).
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { checkImageSize, jpegSize, maxImagePixels, pngSize } from './header.ts';
import { checkJpegStructure } from './jpeg-check.ts';
import { decodeJpegIfast } from './jpeg.ts';

export interface DecodedImage {
  width: number;
  height: number;
  /** RGB, 0..255, row-major height x width x 3. */
  data: Float32Array;
}

export type ImageFormat = 'png' | 'jpeg';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Formats recognised only to refuse them by name. */
const OTHER_FORMATS: [string, number[]][] = [
  ['GIF', [0x47, 0x49, 0x46, 0x38]],
  ['BMP', [0x42, 0x4d]],
  ['TIFF', [0x49, 0x49, 0x2a, 0x00]],
  ['TIFF', [0x4d, 0x4d, 0x00, 0x2a]],
  ['WebP', [0x52, 0x49, 0x46, 0x46]], // RIFF; checked further below
];

const startsWith = (bytes: Uint8Array, magic: number[]) => bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);

/** The image format by magic bytes, or an Error (naming the file) saying what the bytes are not. */
export function detectFormat(bytes: Uint8Array, fileName: string): ImageFormat {
  if (bytes.length === 0) throw new Error(`${fileName}: empty file, not an image`);
  if (startsWith(bytes, PNG_MAGIC)) return 'png';
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  for (const [name, magic] of OTHER_FORMATS) {
    if (!startsWith(bytes, magic)) continue;
    if (name === 'WebP' && String.fromCharCode(...bytes.subarray(8, 12)) !== 'WEBP') continue;
    throw new Error(`${fileName}: ${name} images are not supported (only PNG and JPEG)`);
  }
  const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(`${fileName}: not a PNG or JPEG image (it starts with bytes ${head})`);
}

export interface DecodeOptions {
  /** 'tf' (default): TF-identical IFAST decoding where supported, else jpeg-js; 'jpeg-js': always jpeg-js. */
  jpeg?: 'tf' | 'jpeg-js';
  /** Largest width x height accepted (checked from the header, before decoding); default DEFAULT_MAX_PIXELS or INCEPT_MAX_IMAGE_PIXELS. */
  maxPixels?: number;
}

/** Decodes PNG or JPEG bytes; `fileName` is only used in error messages. */
export function decodeImage(bytes: Uint8Array, fileName: string, opts: DecodeOptions = {}): DecodedImage {
  const format = detectFormat(bytes, fileName);
  const name = format.toUpperCase();
  const declared = format === 'png' ? pngSize(bytes, fileName) : jpegSize(bytes, fileName);
  const maxPixels = maxImagePixels(opts.maxPixels);
  checkImageSize(declared, name, fileName, maxPixels);
  let image: DecodedImage;
  try {
    image = format === 'png' ? decodePng(bytes) : (opts.jpeg ?? 'tf') === 'tf' ? decodeJpegLikeTf(bytes, maxPixels) : decodeJpeg(bytes, maxPixels);
  } catch (e) {
    // Decoders may throw strings or other non-Errors; the message must still say what went wrong.
    throw new Error(`${fileName}: corrupt or truncated ${name} file (${explain(e instanceof Error ? e.message : String(e))})`);
  }
  if (image.width !== declared.width || image.height !== declared.height) {
    throw new Error(`${fileName}: corrupt ${name} file (the header says ${declared.width}x${declared.height}, the decoder gave ${image.width}x${image.height})`);
  }
  return image;
}

/** Decoder messages in plainer words where they are cryptic. */
function explain(message: string): string {
  if (/read requests waitng on finished stream/.test(message)) return 'the file ends early: truncated';
  if (/unrecognised content at end of stream/.test(message)) return 'damaged chunk structure';
  return message;
}

/** Why a file cannot be read, in words. */
function readError(path: string, e: unknown): Error {
  const code = (e as { code?: string }).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
  return new Error(`${path}: cannot read (${why})`);
}

/**
 * Checks, from its first bytes only, that a file can be read and is a PNG or JPEG (the errors
 * readImage would give), so a long run can refuse a bad file before it starts.
 */
export function checkImageFile(path: string): ImageFormat {
  let head: Buffer;
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    head = Buffer.alloc(16);
    head = head.subarray(0, readSync(fd, head, 0, 16, 0));
  } catch (e) {
    throw readError(path, e);
  } finally {
    if (fd !== null) closeSync(fd);
  }
  return detectFormat(head, path);
}

/** Reads and decodes an image file; unreadable files get an Error naming the file. */
export function readImage(path: string, opts: DecodeOptions = {}): DecodedImage {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw readError(path, e);
  }
  return decodeImage(bytes, path, opts);
}

// PNG color types (the IHDR byte).
const GRAY = 0;
const RGB = 2;
const PALETTE = 3;

interface PngMetadata {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  transColor?: number[];
  data: Uint8Array | Uint16Array;
}

function decodePng(bytes: Uint8Array): DecodedImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // skipRescale keeps raw samples (16-bit stays 16-bit) so the scaling below is exact; pngjs
  // always expands to RGBA (palette looked up, gray replicated).
  const png = PNG.sync.read(buf, { skipRescale: true }) as unknown as PngMetadata;
  const { width, height, depth, colorType, transColor } = png;
  const src = png.data;
  if (src.length < width * height * 4) throw new Error(`decoded ${src.length} samples, ${width}x${height} RGBA needs ${width * height * 4}`);
  // Palette entries are always 8-bit; other samples have `depth` bits.
  const max = colorType === PALETTE ? 255 : 2 ** depth - 1;
  const scale = 255 / max;
  // pngjs blanks tRNS colour-keyed pixels to (0,0,0,0); put the key colour back (alpha is dropped).
  const key = transColor && (colorType === GRAY || colorType === RGB) ? transColor : null;
  const keyRgb = key ? (key.length === 1 ? [key[0], key[0], key[0]] : key) : null;
  const out = new Float32Array(width * height * 3);
  for (let p = 0, i = 0, o = 0; p < width * height; p++, i += 4, o += 3) {
    if (keyRgb && src[i + 3] === 0 && src[i] === 0 && src[i + 1] === 0 && src[i + 2] === 0) {
      out[o] = keyRgb[0] * scale;
      out[o + 1] = keyRgb[1] * scale;
      out[o + 2] = keyRgb[2] * scale;
    } else {
      out[o] = src[i] * scale;
      out[o + 1] = src[i + 1] * scale;
      out[o + 2] = src[i + 2] * scale;
    }
  }
  return { width, height, data: out };
}

/**
 * decodeJpegIfast's refusals of features it does not implement (as opposed to damage): these
 * files are decoded by jpeg-js instead, with its accurate IDCT (not bit-identical to TF).
 */
const IFAST_UNSUPPORTED = /not supported|non-integral chroma sampling/;

function decodeJpegLikeTf(bytes: Uint8Array, maxPixels: number): DecodedImage {
  checkJpegEnd(bytes);
  try {
    return decodeJpegIfast(bytes, 'JPEG');
  } catch (e) {
    const msg = (e as Error).message;
    if (IFAST_UNSUPPORTED.test(msg)) return decodeJpeg(bytes, maxPixels);
    throw new Error(msg.replace(/^JPEG: /, ''));
  }
}

function decodeJpeg(bytes: Uint8Array, maxPixels: number): DecodedImage {
  checkJpegEnd(bytes);
  checkJpegStructure(bytes);
  // jpeg-js's own caps follow ours: a later frame header could declare more than the first one did.
  const maxResolutionInMP = maxPixels / 1e6;
  const maxMemoryUsageInMB = Math.max(512, Math.ceil((maxPixels * 16) / 2 ** 20));
  const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxResolutionInMP, maxMemoryUsageInMB });
  const { width, height, data } = img;
  if (data.length !== width * height * 3) throw new Error(`decoded ${data.length} bytes, ${width}x${height} RGB needs ${width * height * 3}`);
  return { width, height, data: Float32Array.from(data) };
}

/**
 * jpeg-js fills a scan that runs out of data with grey instead of failing, so a truncated file
 * would decode "successfully". A complete JPEG ends with the EOI marker (FF D9), possibly followed
 * by padding; refuse files without one near the end.
 */
function checkJpegEnd(bytes: Uint8Array): void {
  const from = Math.max(2, bytes.length - 4096);
  for (let i = bytes.length - 2; i >= from; i--) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return;
  }
  throw new Error('no end-of-image marker: the file is truncated');
}

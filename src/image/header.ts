// Image dimensions read from the file header, before any decoder runs, so that a file declaring a
// huge image (damage, or a decompression bomb) is refused with a clear error instead of making a
// decoder allocate gigabytes. PNG: the IHDR chunk, which the format requires to come first. JPEG:
// the first SOFn frame header, found by walking the marker segments from SOI.

import { hostEnv } from '../platform/host.ts';

/** Default cap on width x height: 8192 x 8192. Decoded RGB floats take 12 bytes a pixel (768 MiB here). */
export const DEFAULT_MAX_PIXELS = 8192 * 8192;

/** The pixel cap: `maxPixels` when given, else INCEPT_MAX_IMAGE_PIXELS, else DEFAULT_MAX_PIXELS. */
export function maxImagePixels(maxPixels?: number, env: Record<string, string | undefined> = hostEnv()): number {
  if (maxPixels !== undefined) return maxPixels;
  const fromEnv = env.INCEPT_MAX_IMAGE_PIXELS;
  if (fromEnv === undefined || fromEnv === '') return DEFAULT_MAX_PIXELS;
  const n = Number(fromEnv);
  if (!(Number.isSafeInteger(n) && n > 0)) throw new Error(`INCEPT_MAX_IMAGE_PIXELS must be a positive integer, got '${fromEnv}'`);
  return n;
}

export interface ImageSize {
  width: number;
  height: number;
}

/** Width and height from a PNG's IHDR chunk. */
export function pngSize(bytes: Uint8Array, fileName: string): ImageSize {
  // 8-byte signature, then the IHDR chunk: length (13), 'IHDR', width, height (big-endian u32).
  if (bytes.length < 24) throw new Error(`${fileName}: corrupt or truncated PNG file (it ends inside the header)`);
  const type = String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]);
  if (type !== 'IHDR') throw new Error(`${fileName}: corrupt PNG file (the first chunk is not IHDR)`);
  const u32 = (p: number) => ((bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3]) >>> 0;
  return { width: u32(16), height: u32(20) };
}

// SOF markers: C0-CF except C4 (DHT), C8 (reserved JPG extension) and CC (DAC).
const isFrameMarker = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/** Width and height from a JPEG's first frame header (SOFn). */
export function jpegSize(bytes: Uint8Array, fileName: string): ImageSize {
  const truncated = () => new Error(`${fileName}: corrupt or truncated JPEG file (no frame header before the image data)`);
  let pos = 2;
  for (;;) {
    while (pos < bytes.length && bytes[pos] !== 0xff) pos++;
    while (pos < bytes.length && bytes[pos] === 0xff) pos++;
    if (pos + 2 >= bytes.length) throw truncated();
    const marker = bytes[pos++];
    // Markers without a length: SOI, EOI, TEM and the restart markers.
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd9 || marker === 0xda) throw truncated(); // EOI or a scan before any frame
    const len = (bytes[pos] << 8) | bytes[pos + 1];
    if (isFrameMarker(marker)) {
      if (len < 8 || pos + 7 > bytes.length) throw truncated();
      return { height: (bytes[pos + 3] << 8) | bytes[pos + 4], width: (bytes[pos + 5] << 8) | bytes[pos + 6] };
    }
    if (len < 2) throw new Error(`${fileName}: corrupt JPEG file (segment 0x${marker.toString(16)} with length ${len})`);
    pos += len;
  }
}

/** Refuses an image with no pixels or more than `maxPixels`, naming the file and the limit. */
export function checkImageSize(size: ImageSize, format: string, fileName: string, maxPixels: number): void {
  const { width, height } = size;
  if (width === 0 || height === 0) {
    const dnl = format === 'JPEG' && height === 0 && width > 0 ? ' (heights defined later in the file, by a DNL marker, are not supported)' : '';
    throw new Error(`${fileName}: ${format} image has no pixels (${width}x${height})${dnl}`);
  }
  if (width * height > maxPixels) {
    throw new Error(
      `${fileName}: ${format} image of ${width}x${height} = ${width * height} pixels is past the limit of ${maxPixels} ` +
        '(raise it with the maxPixels decode option or INCEPT_MAX_IMAGE_PIXELS)',
    );
  }
}

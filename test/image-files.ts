// Small image files written here for the image tests: PNGs by pngjs's encoder or by hand (any colour
// type, bit depth and extra chunk), and hand-assembled JPEGs that jpeg-js cannot encode (grayscale,
// progressive, Adobe CMYK). Each hand JPEG is one 8x8 block per component of flat grey 200: quantiser 1,
// a DC Huffman table whose only code '0' means category 10, the DC value 576 = (200 - 128) * 8, and an
// AC table whose only code '0' is end-of-block.
import { crc32, deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';

/** pngjs's encoder; `data` holds `inputColorType` samples (Uint16Array for 16-bit). */
export function pngjsEncode(width: number, height: number, colorType: 0 | 2 | 4 | 6, bitDepth: 8 | 16, data: Uint8Array | Uint16Array): Buffer {
  const opts = { width, height, colorType, inputColorType: colorType, bitDepth, inputHasAlpha: colorType === 4 || colorType === 6 };
  const png = new PNG(opts);
  png.data = data instanceof Uint16Array ? Buffer.from(data.buffer) : Buffer.from(data);
  return PNG.sync.write(png, opts);
}

export function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** A minimal PNG writer: samples (one per channel, row-major) packed MSB-first at `depth` bits. */
export function handPng(o: { width: number; height: number; colorType: number; depth: number; channels: number; samples: number[]; extra?: Buffer[] }): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(o.width, 0);
  ihdr.writeUInt32BE(o.height, 4);
  ihdr[8] = o.depth;
  ihdr[9] = o.colorType;
  const rowBytes = Math.ceil((o.width * o.channels * o.depth) / 8);
  const raw = Buffer.alloc((rowBytes + 1) * o.height); // filter byte 0 (None) per row
  for (let y = 0; y < o.height; y++) {
    for (let i = 0; i < o.width * o.channels; i++) {
      const v = o.samples[y * o.width * o.channels + i];
      const bit = i * o.depth;
      const at = y * (rowBytes + 1) + 1 + (bit >> 3);
      if (o.depth === 16) raw.writeUInt16BE(v, at);
      else raw[at] |= v << (8 - o.depth - (bit & 7));
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(o.extra ?? []),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}


const SOI = [0xff, 0xd8];
const EOI = [0xff, 0xd9];
const DQT = [0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array(64).fill(1)];
const DHT_DC = [0xff, 0xc4, 0x00, 0x14, 0x00, 1, ...new Array(15).fill(0), 0x0a];
const DHT_AC = [0xff, 0xc4, 0x00, 0x14, 0x10, 1, ...new Array(15).fill(0), 0x00];

/** A frame header (SOF `kind`) for an 8x8 image of `n` components, ids 1..n, sampling 1x1, table 0. */
const sof = (kind: number, n: number) => [0xff, kind, 0x00, 8 + 3 * n, 0x08, 0x00, 0x08, 0x00, 0x08, n, ...Array.from({ length: n }, (_, k) => [k + 1, 0x11, 0x00]).flat()];
/** A scan header over components 1..n, all with DC and AC table 0, spectral selection 0..`se`. */
const sos = (n: number, se: number) => [0xff, 0xda, 0x00, 6 + 2 * n, n, ...Array.from({ length: n }, (_, k) => [k + 1, 0x00]).flat(), 0x00, se, 0x00];

/** Entropy-coded bits of one flat block per component: DC '0' + 576 in 10 bits [+ AC end-of-block '0'], 1-padded. */
function flatBlocks(n: number, withEob: boolean): number[] {
  const bits = ('0' + (576).toString(2) + (withEob ? '0' : '')).repeat(n);
  const padded = bits.padEnd(Math.ceil(bits.length / 8) * 8, '1');
  return Array.from({ length: padded.length / 8 }, (_, i) => parseInt(padded.slice(8 * i, 8 * i + 8), 2));
}

/** Baseline grayscale 8x8, flat 200. */
export function grayJpeg(): Uint8Array {
  return Uint8Array.from([...SOI, ...DQT, ...sof(0xc0, 1), ...DHT_DC, ...DHT_AC, ...sos(1, 63), ...flatBlocks(1, true), ...EOI]);
}

/** Progressive (SOF2) grayscale 8x8 with one DC-only scan, flat 200. */
export function progressiveJpeg(): Uint8Array {
  return Uint8Array.from([...SOI, ...DQT, ...sof(0xc2, 1), ...DHT_DC, ...sos(1, 0), ...flatBlocks(1, false), ...EOI]);
}

/** Baseline Adobe CMYK 8x8 (APP14, transform 0: the components are stored as they are), every ink 200. */
export function cmykJpeg(): Uint8Array {
  const app14 = [0xff, 0xee, 0x00, 0x0e, ...Buffer.from('Adobe', 'latin1'), 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00];
  return Uint8Array.from([...SOI, ...app14, ...DQT, ...sof(0xc0, 4), ...DHT_DC, ...DHT_AC, ...sos(4, 63), ...flatBlocks(4, true), ...EOI]);
}

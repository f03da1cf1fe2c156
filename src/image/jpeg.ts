// A small baseline JPEG decoder that reproduces TensorFlow's tf.image.decode_jpeg bit for bit on
// ordinary files: TF calls libjpeg(-turbo) with its integer FAST inverse DCT (JDCT_IFAST, the AAN
// algorithm with 8-bit constants and truncating shifts), "fancy" (triangle-filter) chroma
// upsampling and libjpeg's fixed-point YCbCr -> RGB tables. Other decoders (jpeg-js, Pillow) use
// an accurate IDCT and different upsampling, which moves a network's logits by up to ~1.
// The arithmetic below follows the published libjpeg algorithms (the JPEG standard, ITU T.81, and
// the IJG documentation of jidctfst / jdsample / jdcolor); the code is our own.
//
// Supported: baseline and extended sequential Huffman (SOF0/SOF1), 8-bit, 1 or 3 components,
// sampling 1x1, 2x1 (4:2:2) and 2x2 (4:2:0) for chroma, restart intervals, non-interleaved scans.
// Progressive, lossless, arithmetic-coded and 12-bit files raise an Error naming the file.
import type { DecodedImage } from './decode.ts';

/** Natural (row-major) index of the k-th coefficient in zigzag order. */
const ZIGZAG: Int32Array = (() => {
  const z = new Int32Array(64);
  let k = 0;
  for (let s = 0; s < 15; s++) {
    // Anti-diagonal s: odd ones run down-left from the top row, even ones up-right.
    const cells: number[] = [];
    for (let r = 0; r < 8; r++) if (s - r >= 0 && s - r < 8) cells.push(r * 8 + (s - r));
    if (s % 2 === 0) cells.reverse();
    for (const c of cells) z[k++] = c;
  }
  return z;
})();

/**
 * libjpeg's IFAST dequantisation scale: 2^14 * a(row) * a(col), a(0) = 1, a(k) = sqrt(2) cos(k pi / 16),
 * rounded. The multiplier for a quantiser q is round(q * scale / 2^12) (2 extra fraction bits).
 */
const AAN_SCALES: Int32Array = (() => {
  const a = (k: number) => (k === 0 ? 1 : Math.SQRT2 * Math.cos((k * Math.PI) / 16));
  const t = new Int32Array(64);
  for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) t[r * 8 + c] = Math.round(16384 * a(r) * a(c));
  return t;
})();

/** Dequantisation multipliers of a quantisation table (natural order) for the fast IDCT. */
export function ifastMultipliers(quant: ArrayLike<number>): Int32Array {
  const m = new Int32Array(64);
  for (let i = 0; i < 64; i++) m[i] = (quant[i] * AAN_SCALES[i] + 2048) >> 12;
  return m;
}

// AAN constants with 8 fraction bits: 1.414213562, 1.847759065, 1.082392200, 2.613125930.
const C1_414 = 362;
const C1_847 = 473;
const C1_082 = 277;
const C2_613 = 669;
/** Fixed-point product, truncated (floor) as libjpeg's fast IDCT does: no rounding term. */
const mul = (v: number, c: number) => (v * c) >> 8;

/**
 * One 1-D AAN inverse DCT over 8 values at in[o + k*step], written to out[p + k*ostep]. The
 * butterfly is the even part (inputs 0, 2, 4, 6) and odd part (1, 3, 5, 7) of Arai-Agui-Nakajima.
 */
function idct1d(i0: number, i1: number, i2: number, i3: number, i4: number, i5: number, i6: number, i7: number, out: Int32Array, p: number, ostep: number): void {
  // Even part.
  const e10 = i0 + i4;
  const e11 = i0 - i4;
  const e13 = i2 + i6;
  const e12 = mul(i2 - i6, C1_414) - e13;
  const a0 = e10 + e13;
  const a3 = e10 - e13;
  const a1 = e11 + e12;
  const a2 = e11 - e12;
  // Odd part.
  const z13 = i5 + i3;
  const z10 = i5 - i3;
  const z11 = i1 + i7;
  const z12 = i1 - i7;
  const b7 = z11 + z13;
  const b11 = mul(z11 - z13, C1_414);
  const z5 = mul(z10 + z12, C1_847);
  const b10 = mul(z12, C1_082) - z5;
  const b12 = mul(z10, -C2_613) + z5;
  const b6 = b12 - b7;
  const b5 = b11 - b6;
  const b4 = b10 + b5;
  out[p] = a0 + b7;
  out[p + 7 * ostep] = a0 - b7;
  out[p + ostep] = a1 + b6;
  out[p + 6 * ostep] = a1 - b6;
  out[p + 2 * ostep] = a2 + b5;
  out[p + 5 * ostep] = a2 - b5;
  out[p + 4 * ostep] = a3 + b4;
  out[p + 3 * ostep] = a3 - b4;
}

/**
 * libjpeg's fast integer IDCT of one block: coefficients (natural order) times the IFAST
 * multipliers, columns then rows, and the result divided by 8 (plus the 2 multiplier fraction
 * bits) with a truncating shift, level-shifted by 128 and clamped to 0..255.
 */
export function idctIfast(coef: Int16Array, at: number, mult: Int32Array, out: Uint8Array, outAt: number, stride: number, ws: Int32Array): void {
  for (let c = 0; c < 8; c++) {
    const q = (k: number) => coef[at + k * 8 + c] * mult[k * 8 + c];
    idct1d(q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(7), ws, c, 8);
  }
  const row = new Int32Array(8);
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    idct1d(ws[w], ws[w + 1], ws[w + 2], ws[w + 3], ws[w + 4], ws[w + 5], ws[w + 6], ws[w + 7], row, 0, 1);
    const o = outAt + r * stride;
    for (let c = 0; c < 8; c++) {
      const v = (row[c] >> 5) + 128;
      out[o + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
}

// ---- bitstream ----

interface Huffman {
  /** For each code length l (1..16): the first code, the last code + 1 and the index of its first value. */
  first: Int32Array;
  end: Int32Array;
  index: Int32Array;
  values: Uint8Array;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array, what: string): Huffman {
  const first = new Int32Array(17);
  const end = new Int32Array(17);
  const index = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let l = 1; l <= 16; l++) {
    first[l] = code;
    index[l] = k;
    code += counts[l - 1];
    k += counts[l - 1];
    end[l] = code;
    if (code > 1 << l) throw new Error(`${what}: invalid Huffman table (too many codes of length ${l})`);
    code <<= 1;
  }
  if (k > values.length) throw new Error(`${what}: Huffman table is truncated`);
  return { first, end, index, values };
}

class BitReader {
  private acc = 0;
  private bits = 0;
  /** Set once a marker is reached: further reads yield zero bits, as libjpeg does. */
  marker = false;

  constructor(
    private readonly data: Uint8Array,
    public pos: number,
  ) {}

  private fill(): void {
    while (this.bits <= 24) {
      let byte = 0;
      if (!this.marker && this.pos < this.data.length) {
        byte = this.data[this.pos];
        if (byte === 0xff) {
          const next = this.data[this.pos + 1];
          if (next === 0x00) this.pos += 2;
          else {
            this.marker = true; // a marker ends the entropy-coded data
            byte = 0;
          }
        } else this.pos++;
      }
      this.acc = ((this.acc << 8) | byte) >>> 0;
      this.bits += 8;
    }
  }

  bit(): number {
    if (this.bits === 0) this.fill();
    this.bits--;
    return (this.acc >>> this.bits) & 1;
  }

  receive(n: number): number {
    if (n === 0) return 0;
    if (this.bits < n) this.fill();
    this.bits -= n;
    return (this.acc >>> this.bits) & ((1 << n) - 1);
  }

  decode(h: Huffman, what: string): number {
    let code = 0;
    for (let l = 1; l <= 16; l++) {
      code = (code << 1) | this.bit();
      if (code < h.end[l] && code >= h.first[l]) return h.values[h.index[l] + code - h.first[l]];
    }
    throw new Error(`${what}: corrupt entropy-coded data (no Huffman code matches)`);
  }

  /** At a restart marker: drop buffered bits and step over RSTn. */
  restart(what: string): void {
    this.acc = 0;
    this.bits = 0;
    this.marker = false;
    let p = this.pos;
    while (p < this.data.length && !(this.data[p] === 0xff && this.data[p + 1] >= 0xd0 && this.data[p + 1] <= 0xd7)) p++;
    if (p >= this.data.length) throw new Error(`${what}: missing restart marker`);
    this.pos = p + 2;
  }
}

/** Sign-extends a received magnitude of t bits (T.81 F.2.2.1 EXTEND). */
const extend = (v: number, t: number) => (t === 0 ? 0 : v < 1 << (t - 1) ? v - (1 << t) + 1 : v);

// ---- frame ----

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** IFAST multipliers latched at the component's first scan. */
  mult?: Int32Array;
  blocksX: number; // stored blocks per row (padded to whole MCUs)
  blocksY: number;
  width: number; // samples actually in the image (downsampled)
  height: number;
  coef: Int16Array; // blocksY * blocksX * 64, natural order
  pred: number;
}

/** Decodes baseline JPEG bytes the way TensorFlow's decode_jpeg(channels=3) does by default. */
export function decodeJpegIfast(bytes: Uint8Array, file = 'JPEG'): DecodedImage {
  const u16 = (p: number) => (bytes[p] << 8) | bytes[p + 1];
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) throw new Error(`${file}: not a JPEG file (no SOI marker)`);
  const quant: (Uint16Array | undefined)[] = [];
  const dcTables: (Huffman | undefined)[] = [];
  const acTables: (Huffman | undefined)[] = [];
  let frame: { width: number; height: number; comps: Component[]; hmax: number; vmax: number; mcusX: number; mcusY: number } | undefined;
  let restartInterval = 0;
  let pos = 2;
  for (;;) {
    while (pos < bytes.length && bytes[pos] !== 0xff) pos++; // tolerate garbage between segments
    while (pos < bytes.length && bytes[pos] === 0xff) pos++; // fill bytes
    if (pos >= bytes.length) throw new Error(`${file}: truncated JPEG (no end-of-image marker)`);
    const marker = bytes[pos++];
    if (marker === 0xd9) break; // EOI
    if (marker >= 0xd0 && marker <= 0xd7) continue; // stray RST
    if (pos + 2 > bytes.length) throw new Error(`${file}: truncated JPEG segment`);
    const len = u16(pos);
    const seg = pos + 2;
    const segEnd = pos + len;
    if (segEnd > bytes.length) throw new Error(`${file}: truncated JPEG segment (marker 0x${marker.toString(16)})`);
    switch (marker) {
      case 0xdb: {
        // DQT: one or more tables, 8- or 16-bit, zigzag order.
        for (let p = seg; p < segEnd; ) {
          const pq = bytes[p] >> 4;
          const tq = bytes[p] & 15;
          p++;
          const t = new Uint16Array(64);
          for (let k = 0; k < 64; k++) {
            t[ZIGZAG[k]] = pq ? u16(p + 2 * k) : bytes[p + k];
          }
          p += pq ? 128 : 64;
          quant[tq] = t;
        }
        break;
      }
      case 0xc4: {
        // DHT: one or more tables.
        for (let p = seg; p < segEnd; ) {
          const tc = bytes[p] >> 4;
          const th = bytes[p] & 15;
          const counts = bytes.subarray(p + 1, p + 17);
          const n = counts.reduce((a, b) => a + b, 0);
          const values = bytes.slice(p + 17, p + 17 + n);
          (tc === 0 ? dcTables : acTables)[th] = buildHuffman(counts, values, `${file}: DHT`);
          p += 17 + n;
        }
        break;
      }
      case 0xdd:
        restartInterval = u16(seg);
        break;
      case 0xc0:
      case 0xc1: {
        if (bytes[seg] !== 8) throw new Error(`${file}: ${bytes[seg]}-bit JPEG samples are not supported (8-bit only)`);
        const height = u16(seg + 1);
        const width = u16(seg + 3);
        const n = bytes[seg + 5];
        if (width === 0 || height === 0) throw new Error(`${file}: JPEG frame of ${width}x${height} pixels (DNL-defined heights are not supported)`);
        if (n !== 1 && n !== 3) throw new Error(`${file}: JPEG with ${n} components is not supported (grayscale or YCbCr only)`);
        if (frame) throw new Error(`${file}: corrupt JPEG (a second frame header)`);
        if (len < 8 + 3 * n) throw new Error(`${file}: corrupt JPEG frame header (${len} bytes for ${n} components)`);
        const raw = Array.from({ length: n }, (_, k) => ({ id: bytes[seg + 6 + 3 * k], h: bytes[seg + 7 + 3 * k] >> 4, v: bytes[seg + 7 + 3 * k] & 15, tq: bytes[seg + 8 + 3 * k] }));
        // T.81 allows sampling factors 1..4; 0 would make the MCU grid infinite.
        for (const c of raw) if (c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4) throw new Error(`${file}: corrupt JPEG frame header (sampling factor ${c.h}x${c.v} of component ${c.id})`);
        const hmax = Math.max(...raw.map((c) => c.h));
        const vmax = Math.max(...raw.map((c) => c.v));
        const mcusX = Math.ceil(width / (8 * hmax));
        const mcusY = Math.ceil(height / (8 * vmax));
        const comps = raw.map((c) => {
          const blocksX = mcusX * c.h;
          const blocksY = mcusY * c.v;
          return {
            ...c,
            blocksX,
            blocksY,
            width: Math.ceil((width * c.h) / hmax),
            height: Math.ceil((height * c.v) / vmax),
            coef: new Int16Array(blocksX * blocksY * 64),
            pred: 0,
          };
        });
        frame = { width, height, comps, hmax, vmax, mcusX, mcusY };
        break;
      }
      case 0xc2:
      case 0xc6:
      case 0xca:
      case 0xce:
        throw new Error(`${file}: progressive JPEG is not supported by the IFAST decoder (baseline only)`);
      case 0xc3:
      case 0xc5:
      case 0xc7:
      case 0xc9:
      case 0xcb:
      case 0xcd:
      case 0xcf:
        throw new Error(`${file}: lossless, hierarchical or arithmetic-coded JPEG (SOF${marker - 0xc0}) is not supported`);
      case 0xda: {
        if (!frame) throw new Error(`${file}: scan before the frame header`);
        const ns = bytes[seg];
        const scomps = Array.from({ length: ns }, (_, k) => {
          const id = bytes[seg + 1 + 2 * k];
          const c = frame!.comps.find((x) => x.id === id);
          if (!c) throw new Error(`${file}: scan names unknown component ${id}`);
          const td = bytes[seg + 2 + 2 * k] >> 4;
          const ta = bytes[seg + 2 + 2 * k] & 15;
          const dc = dcTables[td];
          const ac = acTables[ta];
          if (!dc || !ac) throw new Error(`${file}: scan uses an undefined Huffman table`);
          const q = quant[c.tq];
          if (!q) throw new Error(`${file}: component ${id} uses undefined quantisation table ${c.tq}`);
          c.mult ??= ifastMultipliers(q);
          return { c, dc, ac };
        });
        pos = decodeScan(bytes, segEnd, frame, scomps, restartInterval, file);
        continue;
      }
      default:
        break; // APPn, COM and others: skipped
    }
    pos = segEnd;
  }
  if (!frame) throw new Error(`${file}: no frame header (SOF) in the JPEG`);
  return toRgb(frame, file);
}

function decodeScan(
  bytes: Uint8Array,
  start: number,
  frame: { comps: Component[]; mcusX: number; mcusY: number },
  scomps: { c: Component; dc: Huffman; ac: Huffman }[],
  restartInterval: number,
  file: string,
): number {
  const bits = new BitReader(bytes, start);
  for (const s of scomps) s.c.pred = 0;
  const block = (s: { c: Component; dc: Huffman; ac: Huffman }, by: number, bx: number) => {
    const c = s.c;
    const at = (by * c.blocksX + bx) * 64;
    const t = bits.decode(s.dc, file);
    c.pred += extend(bits.receive(t), t);
    c.coef[at] = c.pred;
    for (let k = 1; k < 64; ) {
      const rs = bits.decode(s.ac, file);
      const r = rs >> 4;
      const size = rs & 15;
      if (size === 0) {
        if (r === 15) {
          k += 16;
          continue;
        }
        break; // EOB
      }
      k += r;
      if (k > 63) throw new Error(`${file}: corrupt JPEG block (coefficient index past 63)`);
      c.coef[at + ZIGZAG[k]] = extend(bits.receive(size), size);
      k++;
    }
  };
  const single = scomps.length === 1;
  const units = single
    ? { x: Math.ceil(scomps[0].c.width / 8), y: Math.ceil(scomps[0].c.height / 8) }
    : { x: frame.mcusX, y: frame.mcusY };
  const total = units.x * units.y;
  for (let m = 0; m < total; m++) {
    if (restartInterval > 0 && m > 0 && m % restartInterval === 0) {
      bits.restart(file);
      for (const s of scomps) s.c.pred = 0;
    }
    const my = Math.floor(m / units.x);
    const mx = m % units.x;
    if (single) block(scomps[0], my, mx);
    else for (const s of scomps) for (let v = 0; v < s.c.v; v++) for (let h = 0; h < s.c.h; h++) block(s, my * s.c.v + v, mx * s.c.h + h);
  }
  // The next marker follows the entropy-coded data.
  let p = bits.pos;
  while (p < bytes.length - 1 && !(bytes[p] === 0xff && bytes[p + 1] !== 0 && !(bytes[p + 1] >= 0xd0 && bytes[p + 1] <= 0xd7))) p++;
  return p;
}

// ---- samples, upsampling, colour ----

/** The component's samples (IDCT of every stored block), plane width blocksX * 8. */
function samples(c: Component, file: string): Uint8Array {
  if (!c.mult) throw new Error(`${file}: component ${c.id} has no scan`);
  const stride = c.blocksX * 8;
  const out = new Uint8Array(stride * c.blocksY * 8);
  const ws = new Int32Array(64);
  for (let by = 0; by < c.blocksY; by++)
    for (let bx = 0; bx < c.blocksX; bx++) idctIfast(c.coef, (by * c.blocksX + bx) * 64, c.mult, out, by * 8 * stride + bx * 8, stride, ws);
  return out;
}

/**
 * libjpeg's fancy upsampling to the full image size: h2v2 is a triangle filter (3/4, 1/4 in each
 * direction, edge rows and columns replicated) with alternating rounding biases 8 and 7; h2v1 is
 * the same along rows with biases 1 and 2. Returns a width x height plane.
 */
function upsample(plane: Uint8Array, stride: number, c: Component, hs: number, vs: number, width: number, height: number, file: string): Uint8Array {
  const out = new Uint8Array(width * height);
  const cw = c.width;
  const ch = c.height;
  const put = (y: number, row: Int32Array | Uint8Array, n: number) => {
    if (y < height) for (let x = 0; x < Math.min(n, width); x++) out[y * width + x] = row[x];
  };
  if (hs === 1 && vs === 1) {
    for (let y = 0; y < height; y++) put(y, plane.subarray(y * stride, y * stride + width), width);
  } else if (hs === 2 && vs === 1) {
    const row = new Int32Array(2 * cw);
    for (let y = 0; y < ch; y++) {
      const r = plane.subarray(y * stride);
      for (let x = 0; x < cw; x++) {
        const left = x > 0 ? r[x - 1] : -1;
        const right = x < cw - 1 ? r[x + 1] : -1;
        row[2 * x] = left < 0 ? r[x] : (3 * r[x] + left + 1) >> 2;
        row[2 * x + 1] = right < 0 ? r[x] : (3 * r[x] + right + 2) >> 2;
      }
      put(y, row, 2 * cw);
    }
  } else if (hs === 2 && vs === 2) {
    const sums = new Int32Array(cw);
    const row = new Int32Array(2 * cw);
    for (let y = 0; y < ch; y++) {
      const near = plane.subarray(y * stride);
      for (const [dy, oy] of [
        [-1, 2 * y],
        [1, 2 * y + 1],
      ]) {
        const fy = Math.min(Math.max(y + dy, 0), ch - 1); // edge rows replicated
        const far = plane.subarray(fy * stride);
        for (let x = 0; x < cw; x++) sums[x] = 3 * near[x] + far[x];
        for (let x = 0; x < cw; x++) {
          const s3 = 3 * sums[x];
          row[2 * x] = x > 0 ? (s3 + sums[x - 1] + 8) >> 4 : (4 * sums[x] + 8) >> 4;
          row[2 * x + 1] = x < cw - 1 ? (s3 + sums[x + 1] + 7) >> 4 : (4 * sums[x] + 7) >> 4;
        }
        put(oy, row, 2 * cw);
      }
    }
  } else {
    throw new Error(`${file}: chroma sampling ${hs}x${vs} relative to luma is not supported (1x1, 2x1 and 2x2 only)`);
  }
  return out;
}

const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
  CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + 32768;
}
const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

function toRgb(frame: { width: number; height: number; comps: Component[]; hmax: number; vmax: number }, file: string): DecodedImage {
  const { width, height, comps, hmax, vmax } = frame;
  const planes = comps.map((c) => {
    if (hmax % c.h !== 0 || vmax % c.v !== 0) throw new Error(`${file}: non-integral chroma sampling ${c.h}x${c.v} of ${hmax}x${vmax}`);
    return upsample(samples(c, file), c.blocksX * 8, c, hmax / c.h, vmax / c.v, width, height, file);
  });
  const n = width * height;
  const data = new Float32Array(n * 3);
  if (planes.length === 1) {
    for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = planes[0][i];
  } else {
    const [yp, cbp, crp] = planes;
    for (let i = 0; i < n; i++) {
      const y = yp[i];
      const cb = cbp[i];
      const cr = crp[i];
      data[3 * i] = clamp8(y + CR_R[cr]);
      data[3 * i + 1] = clamp8(y + ((CB_G[cb] + CR_G[cr]) >> 16));
      data[3 * i + 2] = clamp8(y + CB_B[cb]);
    }
  }
  return { width, height, data };
}

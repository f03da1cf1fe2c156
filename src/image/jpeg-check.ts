// A structural check of a JPEG's marker segments, run before jpeg-js decodes a file (progressive,
// CMYK and the other files the IFAST decoder leaves to it). jpeg-js trusts the segments: a scan that
// names a component the frame lacks or a Huffman table never defined ends in a TypeError deep inside
// it. This walk refuses such files with a message that says what is wrong. It checks what a decoder
// relies on (T.81, B.2): segment lengths that match their contents, one frame with 1-4 components
// and sampling factors 1-4, scans over the frame's components with defined tables, and no scan
// before the frame; the entropy-coded data itself is left to the decoder.

interface FrameInfo {
  ids: Set<number>;
  quantIds: number[];
}

/** Throws an Error (without the file name; the caller adds it) when the segments are inconsistent. */
export function checkJpegStructure(bytes: Uint8Array): void {
  const u16 = (p: number) => (bytes[p] << 8) | bytes[p + 1];
  const quant = new Set<number>();
  const dc = new Set<number>();
  const ac = new Set<number>();
  let frame: FrameInfo | null = null;
  let pos = 2;
  for (;;) {
    while (pos < bytes.length && bytes[pos] !== 0xff) pos++; // entropy-coded data, skipped
    while (pos < bytes.length && bytes[pos] === 0xff) pos++;
    if (pos >= bytes.length) throw new Error('no end-of-image marker: the file is truncated');
    const marker = bytes[pos++];
    if (marker === 0xd9) return;
    if (marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // stuffed byte, TEM, RST
    if (marker === 0xd8) throw new Error('a second start-of-image marker');
    if (pos + 2 > bytes.length) throw new Error('truncated segment');
    const len = u16(pos);
    const seg = pos + 2;
    const end = pos + len;
    if (len < 2 || end > bytes.length) throw new Error(`segment 0x${marker.toString(16)} of length ${len} does not fit the file`);
    if (marker === 0xdb) readQuantTables(bytes, seg, end, quant);
    else if (marker === 0xc4) readHuffmanTables(bytes, seg, end, dc, ac);
    else if (marker === 0xdd && len !== 4) throw new Error(`restart interval segment of length ${len}`);
    else if (isFrame(marker)) {
      if (frame) throw new Error('a second frame header');
      frame = readFrame(bytes, seg, len);
    } else if (marker === 0xda) {
      if (!frame) throw new Error('a scan before the frame header');
      checkScan(bytes, seg, len, frame, quant, dc, ac);
    }
    pos = end;
  }
}

const isFrame = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

function readQuantTables(bytes: Uint8Array, p: number, end: number, quant: Set<number>): void {
  while (p < end) {
    const precision = bytes[p] >> 4;
    const id = bytes[p] & 15;
    if (precision > 1 || id > 3) throw new Error(`quantisation table ${id} with precision ${precision}`);
    p += 1 + 64 * (precision + 1);
    quant.add(id);
  }
  if (p !== end) throw new Error('quantisation table segment length does not match its tables');
}

function readHuffmanTables(bytes: Uint8Array, p: number, end: number, dc: Set<number>, ac: Set<number>): void {
  while (p < end) {
    const cls = bytes[p] >> 4;
    const id = bytes[p] & 15;
    if (cls > 1 || id > 3) throw new Error(`Huffman table class ${cls} id ${id}`);
    if (p + 17 > end) throw new Error('Huffman table segment is truncated');
    let n = 0;
    for (let k = 1; k <= 16; k++) n += bytes[p + k];
    if (n === 0 || n > 256) throw new Error(`Huffman table with ${n} codes`);
    p += 17 + n;
    (cls === 0 ? dc : ac).add(id);
  }
  if (p !== end) throw new Error('Huffman table segment length does not match its tables');
}

function readFrame(bytes: Uint8Array, seg: number, len: number): FrameInfo {
  const n = bytes[seg + 5];
  if (n < 1 || n > 4) throw new Error(`frame with ${n} components`);
  if (len !== 8 + 3 * n) throw new Error(`frame header of ${len} bytes for ${n} components`);
  const ids = new Set<number>();
  const quantIds: number[] = [];
  for (let k = 0; k < n; k++) {
    const at = seg + 6 + 3 * k;
    const h = bytes[at + 1] >> 4;
    const v = bytes[at + 1] & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) throw new Error(`sampling factor ${h}x${v} of component ${bytes[at]}`);
    if (bytes[at + 2] > 3) throw new Error(`component ${bytes[at]} uses quantisation table ${bytes[at + 2]}`);
    if (ids.has(bytes[at])) throw new Error(`component id ${bytes[at]} twice in the frame`);
    ids.add(bytes[at]);
    quantIds.push(bytes[at + 2]);
  }
  return { ids, quantIds };
}

function checkScan(bytes: Uint8Array, seg: number, len: number, frame: FrameInfo, quant: Set<number>, dc: Set<number>, ac: Set<number>): void {
  const ns = bytes[seg];
  if (ns < 1 || ns > 4 || len !== 6 + 2 * ns) throw new Error(`scan header of ${len} bytes for ${ns} components`);
  const ss = bytes[seg + 1 + 2 * ns];
  const se = bytes[seg + 2 + 2 * ns];
  const ah = bytes[seg + 3 + 2 * ns] >> 4; // > 0: a refinement scan; DC refinement reads raw bits, no table
  if (ss > 63 || se > 63 || ss > se) throw new Error(`scan over coefficients ${ss}..${se}`);
  for (const q of frame.quantIds) if (!quant.has(q)) throw new Error(`quantisation table ${q} is used but not defined`);
  for (let k = 0; k < ns; k++) {
    const id = bytes[seg + 1 + 2 * k];
    const tables = bytes[seg + 2 + 2 * k];
    if (!frame.ids.has(id)) throw new Error(`scan names component ${id}, which the frame does not have`);
    if (ss === 0 && ah === 0 && !dc.has(tables >> 4)) throw new Error(`scan uses DC Huffman table ${tables >> 4}, which is not defined`);
    if (se > 0 && !ac.has(tables & 15)) throw new Error(`scan uses AC Huffman table ${tables & 15}, which is not defined`);
  }
}

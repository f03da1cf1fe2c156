// Backward of 2-D max pooling over NHWC as a gather over strips: an invocation owns T consecutive
// pixels of one input row (one channel vector) and visits each output window that reaches the
// strip ONCE: it re-scans the window from x for its first maximum (row-major tap order, the
// forward's) and adds the window's dy to that tap when the tap lies in the strip. Neighbouring
// pixels share their windows, so a 3x3 stride-2 pool loads about 8 x values per pixel instead of
// about 20 when each pixel re-scans every window covering it.
// Window geometry is override constants (divisions compile to shifts; loops unroll). A tap
// outside the input is skipped (the forward's padding never wins); a window wholly outside
// passes nothing, as the forward's output there does not depend on x.
override ACCUM: bool = false; // add into dx instead of overwriting it
override KH: i32 = 1;
override KW: i32 = 1;
override SH: i32 = 1;
override SW: i32 = 1;
override DH: i32 = 1;
override DW: i32 = 1;

alias V = {{V}};     // f32 or vec4<f32>
alias I = {{I}};     // i32 or vec4<i32>
const T: i32 = {{T}}; // pixels per strip

struct Params {
  H: u32, W: u32, CV: u32, OH: u32,       // CV: channel vectors per pixel
  OW: u32, DYS: u32, DYOFF: u32, NS: u32, // dy row stride and channel offset in vectors; strips per row
  padTop: i32, padLeft: i32, _a: i32, _b: i32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read> dy: array<V>;
@group(0) @binding(3) var<storage, read_write> dx: array<V>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let j = wg.x * 64u + li; // (strip, channel vector) within the row
  if (j >= p.NS * p.CV) { return; }
  let ih = i32(wg.y);
  let n = wg.z;
  let strip = j / p.CV;
  let cv = j - strip * p.CV;
  let iw0 = i32(strip) * T;
  let img = n * p.H * p.W * p.CV + cv; // this channel vector of image n, pixel (0, 0)
  let H = i32(p.H);
  let W = i32(p.W);
  let hp = ih + p.padTop;
  // Windows whose columns reach [iw0, iw0 + T): ow*SW - padLeft + kx*DW in the strip for some kx.
  let reach = iw0 + p.padLeft - (KW - 1) * DW;
  let owLo = select(0, (reach + SW - 1) / SW, reach > 0);
  let owHi = min(i32(p.OW) - 1, (iw0 + T - 1 + p.padLeft) / SW);

  var acc: array<V, T>;
  for (var ky = 0; ky < KH; ky++) {
    let th = hp - ky * DH;
    if (th < 0) { break; }
    if (th % SH != 0) { continue; }
    let oh = th / SH;
    if (oh >= i32(p.OH)) { continue; }
    let h0 = oh * SH - p.padTop;
    for (var ow = owLo; ow <= owHi; ow++) {
      let w0 = ow * SW - p.padLeft;
      // First maximum of window (oh, ow): its tap row and column, per channel.
      var found = false;
      var best = V();
      var by = I(-1);
      var bx = I(-1);
      for (var ty = 0; ty < KH; ty++) {
        let h = h0 + ty * DH;
        if (h < 0 || h >= H) { continue; }
        for (var tx = 0; tx < KW; tx++) {
          let w = w0 + tx * DW;
          if (w < 0 || w >= W) { continue; }
          let v = x[img + (u32(h) * p.W + u32(w)) * p.CV];
          if (!found) {
            best = v;
            by = I(ty);
            bx = I(tx);
            found = true;
          } else {
            let take = v > best; // strict: a tie keeps the earlier tap
            best = select(best, v, take);
            by = select(by, I(ty), take);
            bx = select(bx, I(tx), take);
          }
        }
      }
      // Only windows whose maximum sits in this row (tap ky) pass anything to the strip.
      let col = w0 + bx * DW - iw0;
      let row = by == I(ky);
      let g = dy[((n * p.OH + u32(oh)) * p.OW + u32(ow)) * p.DYS + p.DYOFF + cv];
      for (var t = 0; t < T; t++) {
        acc[t] += select(V(), g, row & (col == I(t)));
      }
    }
  }
  for (var t = 0; t < T; t++) {
    let iw = iw0 + t;
    if (iw >= W) { break; }
    let i = img + (u32(ih) * p.W + u32(iw)) * p.CV;
    if (ACCUM) { dx[i] += acc[t]; } else { dx[i] = acc[t]; }
  }
}

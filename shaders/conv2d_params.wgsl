// The uniforms of the implicit-GEMM forward kernels conv2d.wgsl and conv2d_bcast.wgsl (pulled in
// by their include line; src/kernels/conv2d.ts and conv2d_bcast.ts pack them in this order).
struct Params {
  N: u32, H: u32, W: u32, C: u32,      // input NHWC
  OH: u32, OW: u32, CO: u32, M: u32,   // output spatial size, channels, M = N * OH * OW
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,  // dilations, top/left padding
  CTOT: u32, COFF: u32, _a: u32, _b: u32, // output row stride (channels) and channel offset
}
@group(0) @binding(0) var<uniform> p: Params;

// Shared by conv2d_tiled.wgsl, conv2d_tiled_grad_input.wgsl and conv2d_tiled_grad_filter.wgsl
// (their include line, expanded by src/gpu/pipelines.ts; conv2d_tiled.wgsl's header has
// the design): the tile shape, the staged tiles and the accumulators, and the register-blocked
// multiply over one staged step. Each including shader defines AS_ROW and BS_ROW, the vec4s per
// staged k-row of A and B (padded or not, as its stores need).
const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const TXN: u32 = BN / TN;              // invocations along N
const NT: u32 = (BM / TM) * TXN;       // invocations per workgroup

var<workgroup> As: array<vec4<f32>, BK * AS_ROW>;
var<workgroup> Bs: array<vec4<f32>, BK * BS_ROW>;
var<private> acc: array<vec4<f32>, TM * TN / 4u>;

// TM x TN multiply-adds per staged k: rows ty*TM.., columns tx*TN.. of the tile.
fn multiplyStaged(tx: u32, ty: u32) {
  for (var k = 0u; k < BK; k++) {
    var a: array<vec4<f32>, TM / 4u>;
    for (var i = 0u; i < TM / 4u; i++) { a[i] = As[k * AS_ROW + ty * (TM / 4u) + i]; }
    var b: array<vec4<f32>, TN / 4u>;
    for (var q = 0u; q < TN / 4u; q++) { b[q] = Bs[k * BS_ROW + tx * (TN / 4u) + q]; }
    for (var r = 0u; r < TM; r++) {
      let ar = a[r / 4u][r % 4u];
      for (var q = 0u; q < TN / 4u; q++) { acc[r * (TN / 4u) + q] += ar * b[q]; }
    }
  }
}

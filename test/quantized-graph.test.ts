// Weight-quantized TensorFlow graphs (Dequantize of 8-bit constants). The fixture's
// quantized_graph.pb (MobileNet v1 0.25/128, made from frozen_graph.pb by TF's quantize_weights,
// with batch norms folded into the conv weights) loads; every dequantized tensor is within half a
// quantization step of the float tensor it was made from (taken from frozen_graph.pb, the batch
// norm folded here from its definition), and its logits are within quantization error of
// frozen_graph.pb's. Plus Dequantize's modes on a small GraphDef written here.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { decodeJpegIfast } from '../src/image/jpeg.ts';
import { preprocessMeanStd } from '../src/image/preprocess.ts';
import { loadModel, openModel } from '../src/import/load-model.ts';
import { encodeTfMessage } from '../src/import/tf-proto.ts';
import { SHARED_DIR, hasShared, sharedMissingMessage } from './helpers.ts';

const work = mkdtempSync(join(tmpdir(), 'incept-quant-'));
afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  await closeRuntime();
});

const DT_FLOAT = 1;
const DT_QINT8 = 11;
const DT_QUINT8 = 12;
const shape = (s: number[]) => ({ dim: s.map((size) => ({ size })) });
const scalar = (name: string, v: number) => ({ name, op: 'Const', attr: { dtype: { type: DT_FLOAT }, value: { tensor: { dtype: DT_FLOAT, tensorShape: shape([]), floatVal: [v] } } } });

/** input [1,1,1,3] -> MatMul-free: Mul by a dequantized [3] constant. */
function dequantizeGraph(mode: string, dtype: number, q: number[], min: number, max: number): string {
  const bytes = dtype === DT_QINT8 ? new Uint8Array(Int8Array.from(q).buffer) : Uint8Array.from(q);
  const nodes = [
    { name: 'input', op: 'Placeholder', attr: { dtype: { type: DT_FLOAT }, shape: { shape: shape([1, 1, 1, q.length]) } } },
    { name: 'w_q', op: 'Const', attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: shape([q.length]), tensorContent: bytes } } } },
    scalar('w_min', min),
    scalar('w_max', max),
    { name: 'w', op: 'Dequantize', input: ['w_q', 'w_min', 'w_max'], attr: { T: { type: dtype }, mode: { s: new TextEncoder().encode(mode) } } },
    { name: 'y', op: 'Mul', input: ['input', 'w'], attr: { T: { type: DT_FLOAT } } },
  ];
  const path = join(work, `${mode}-${dtype}.pb`);
  writeFileSync(path, encodeTfMessage('GraphDef', { node: nodes }));
  return path;
}

describe('Dequantize of constants (written here)', () => {
  it("MIN_COMBINED: min + (q - lowest) * (max - min) / 255, for quint8 and qint8", () => {
    const u = openModel(dequantizeGraph('MIN_COMBINED', DT_QUINT8, [0, 255, 51], -1, 4)).graph;
    expect(Array.from(u.param('w').data)).toEqual([-1, 4, 0].map(Math.fround));
    const s = openModel(dequantizeGraph('MIN_COMBINED', DT_QINT8, [-128, 127, -77], -1, 4)).graph;
    expect(Array.from(s.param('w').data)).toEqual([-1, 4, 0].map(Math.fround));
  });

  it('MIN_FIRST rounds min to a whole number of steps (so 0 is exact)', () => {
    // step = 2.55 / 255 = 0.01; min -1.004 rounds to -1.00: q = 100 is exactly 0.
    const g = openModel(dequantizeGraph('MIN_FIRST', DT_QUINT8, [0, 100, 255], -1.004, 1.546)).graph;
    // MIN_COMBINED would give -1.004, -0.004, 1.546.
    const got = Array.from(g.param('w').data);
    [-1, 0, 1.55].forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThan(1e-6));
    expect(Math.abs(g.param('w').data[1])).toBeLessThan(1e-6);
  });

  it('SCALED mode is refused, naming the node', () => {
    const path = dequantizeGraph('SCALED', DT_QUINT8, [1, 2, 3], 0, 1);
    expect(() => openModel(path)).toThrow(/quantized|Dequantize mode 'SCALED' is not supported/);
    expect(() => openModel(path)).toThrow(/'?w'?/);
  });
});

const DIR = join(SHARED_DIR, 'fixtures/tf-mobilenet');
const MODELS = join(DIR, 'models/mobilenet_v1_0.25_128');
const present = hasShared && existsSync(join(MODELS, 'quantized_graph.pb'));
if (!present) console.log(sharedMissingMessage('the quantized MobileNet tests'));

describe.skipIf(!present)("TF's quantized MobileNet v1 0.25/128 (quantized_graph.pb)", () => {
  it('dequantizes each 8-bit tensor to within half a step of the float tensor it came from', () => {
    const q = openModel(join(MODELS, 'quantized_graph.pb')).graph;
    const f = openModel(join(MODELS, 'frozen_graph.pb')).graph;
    const check = (dq: Float32Array, float: ArrayLike<number>) => {
      let lo = Infinity;
      let hi = -Infinity;
      let worst = 0;
      for (let i = 0; i < dq.length; i++) {
        lo = Math.min(lo, float[i]);
        hi = Math.max(hi, float[i]);
        worst = Math.max(worst, Math.abs(dq[i] - float[i]));
      }
      expect(worst).toBeLessThanOrEqual(((hi - lo) / 255) * 0.5 * (1 + 1e-5));
      expect(worst).toBeGreaterThan(0); // it is quantized
    };
    check(q.param('MobilenetV1/Logits/Conv2d_1c_1x1/weights/read/_1__cf__1').data, f.param('MobilenetV1/Logits/Conv2d_1c_1x1/weights').data);
    // The pointwise conv's weights were stored with its batch norm folded in: w * gamma / sqrt(var + 0.001).
    const w = f.param('MobilenetV1/Conv2d_13_pointwise/weights').data;
    const gamma = f.param('MobilenetV1/Conv2d_13_pointwise/BatchNorm/gamma').data;
    const variance = f.param('MobilenetV1/Conv2d_13_pointwise/BatchNorm/moving_variance').data;
    const folded = Float64Array.from(w, (v, i) => (v * gamma[i % 256]) / Math.sqrt(variance[i % 256] + 0.001));
    check(q.param('MobilenetV1/Conv2d_13_pointwise/weights/read/_4__cf__4').data, folded);
  });

  it("logits within quantization error of frozen_graph.pb's on the 60 training photos", async () => {
    const [, ...lines] = readFileSync(join(DIR, 'manifest.csv'), 'utf8').trim().split('\n');
    const files = lines.map((l) => l.split(',')).filter((f) => f[0] === 'train').map((f) => f[6]);
    const per = 128 * 128 * 3;
    const x = new Float32Array(files.length * per);
    files.forEach((f, i) => x.set(preprocessMeanStd(decodeJpegIfast(readFileSync(join(DIR, f)), f), 128, { mean: 127.5, std: 127.5 }), i * per));
    const L = 'MobilenetV1/Predictions/Reshape';
    const logits = async (file: string) => {
      const m = await loadModel(join(MODELS, file), { outputs: [L] });
      const r = (await m.model.predict(x, { outputs: [L] }))[L];
      m.model.dispose();
      return r;
    };
    const lq = await logits('quantized_graph.pb');
    const lf = await logits('frozen_graph.pb');
    const argmax = (a: Float32Array, at: number) => {
      let b = 0;
      for (let k = 1; k < 1001; k++) if (a[at + k] > a[at + b]) b = k;
      return b;
    };
    let maxAbs = 0;
    let agree = 0;
    for (let i = 0; i < files.length; i++) {
      for (let k = 0; k < 1001; k++) maxAbs = Math.max(maxAbs, Math.abs(lq[i * 1001 + k] - lf[i * 1001 + k]));
      if (argmax(lq, i * 1001) === argmax(lf, i * 1001)) agree++;
    }
    console.log(`quantized vs float MobileNet on ${files.length} photos: max |logit difference| ${maxAbs.toFixed(3)}, top-1 agreement ${agree}/${files.length}`);
    // Measured: 1.16 max over all 280 fixture photos, top-1 agreement 78% (flat logits on fruit photos).
    expect(maxAbs).toBeGreaterThan(0);
    expect(maxAbs).toBeLessThan(1.5);
    expect(agree / files.length).toBeGreaterThanOrEqual(0.7);
  }, 300_000);
});

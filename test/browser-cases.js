// Kernel and network cases run identically in Node (the sources) and in a page (the bundle): the
// same function, given the engine's exports and a runtime, makes its inputs from a fixed seed and
// returns every result as a plain array, so the two sides see the same numbers by construction.
// Plain JavaScript, so the test can hand its source to the page unchanged.
export async function inceptionCases(incept, rt) {
  let s = 12345;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296) * 2 - 1;
  };
  const size = (shape) => shape.reduce((a, b) => a * b, 1);
  const t = (shape) => incept.upload(rt, Float32Array.from({ length: size(shape) }, rnd), shape);
  const out = {};
  const put = async (name, tensor) => {
    out[name] = Array.from(await tensor.read());
  };
  await put('conv 3x3 stride 2 VALID + scale/shift/ReLU (Conv2d_1a)', incept.conv2d(t([1, 17, 17, 3]), t([3, 3, 3, 32]), { strides: [2, 2], padding: 'VALID' }, { scale: t([32]), shift: t([32]), activation: 'relu' }));
  await put('conv 1x7 SAME (Mixed_6b)', incept.conv2d(t([1, 9, 9, 16]), t([1, 7, 16, 20]), { padding: 'SAME' }));
  await put('conv 7x1 SAME (Mixed_6b)', incept.conv2d(t([1, 9, 9, 20]), t([7, 1, 20, 16]), { padding: 'SAME' }));
  await put('conv 1x1 + bias (Mixed_5b)', incept.conv2d(t([2, 8, 8, 24]), t([1, 1, 24, 12]), {}, { bias: t([12]) }));
  await put('conv 3x3 SAME, odd channels (general kernel)', incept.conv2d(t([2, 7, 7, 5]), t([3, 3, 5, 6]), { padding: 'SAME' }));
  await put('avg pool 3x3 stride 1 SAME', incept.pool('avg', t([1, 9, 9, 8]), { kernel: [3, 3], strides: [1, 1], padding: 'SAME' }));
  await put('max pool 3x3 stride 2 VALID', incept.pool('max', t([1, 9, 9, 8]), { kernel: [3, 3], strides: [2, 2] }));
  await put('concat on channels', incept.concat([t([1, 4, 4, 3]), t([1, 4, 4, 5])], -1));
  await put('matmul + bias', incept.matmul(t([3, 40]), t([40, 10]), {}, t([10])));
  await put('softmax', incept.softmax(t([3, 10])));
  await put('mean over H, W', incept.reduce('mean', t([2, 5, 5, 8]), { axes: [1, 2] }));
  // A thin Inception v3 (depth multiplier 0.1, 75x75): every kernel of the network, fused as planned.
  const model = new incept.Model(rt, (batch) => incept.inceptionV3({ numClasses: 5, depthMultiplier: 0.1, inputSize: 75, auxLogits: false, seed: 3, batch }));
  const ends = ['Conv2d_2b_3x3', 'MaxPool_5a_3x3', 'Mixed_5d', 'Mixed_6e', 'Mixed_7c', 'Logits', 'Predictions'];
  const images = Float32Array.from({ length: 2 * 75 * 75 * 3 }, rnd);
  const r = await model.predict(images, { outputs: ends });
  for (const e of ends) out[`tiny Inception v3 ${e}`] = Array.from(r[e]);
  model.dispose();
  return out;
}

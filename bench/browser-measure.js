// What the browser suite times, as one plain-JavaScript function run unchanged in Node (the sources)
// and in a page (the bundle): an Inception v3 forward (random weights, fixed seed) and a fine-tuning
// step of a new head (the page's trainHead: Logits trained, the rest frozen), on the wall clock from
// upload to the readback of the result. The first run (compile + plan + run) is reported apart.
export async function measureInception(incept, rt, { size = 299, batch = 1, trainBatch = 2, runs = 3 } = {}) {
  const now = () => performance.now();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  let s = 1;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
  const options = { numClasses: 1001, inputSize: size, auxLogits: false, seed: 1 };
  const model = new incept.Model(rt, (b) => incept.inceptionV3({ ...options, batch: b }));
  const images = Float32Array.from({ length: batch * size * size * 3 }, rnd);
  const timed = async (fn) => {
    const t = now();
    await fn();
    return now() - t;
  };
  const forward = () => model.predict(images, { outputs: ['Predictions'] });
  const forwardFirst = await timed(forward);
  const forwardRuns = [];
  for (let i = 0; i < runs; i++) forwardRuns.push(await timed(forward));
  model.dispose();

  const base = incept.randomInception(options);
  const tm = await incept.replaceHead(base, { head: 2, rt });
  const trainImages = Float32Array.from({ length: trainBatch * size * size * 3 }, rnd);
  const labels = Int32Array.from({ length: trainBatch }, (_, i) => i % 2);
  const stepTimes = [];
  let last = now();
  const losses = await incept.trainHead(tm, trainImages, labels, {
    steps: runs + 1,
    batch: trainBatch,
    learningRate: 0.01,
    onStep: () => {
      stepTimes.push(now() - last);
      last = now();
    },
  });
  tm.model.dispose();
  return { forwardFirst, forward: median(forwardRuns), stepFirst: stepTimes[0], step: median(stepTimes.slice(1)), losses };
}

// The page's behaviour: every step calls the engine's browser bundle (./incept.js, built from
// src/browser.ts). State lives in `state`; each button runs one action through act(), which shows
// a failure as one message naming the file and leaves the page usable.
import * as incept from './incept.js';

const $ = (id) => document.getElementById(id);
const state = { rt: null, base: null, current: null, images: [], classes: [], trained: null };
window.incept = incept; // for the console (and the browser tests)
window.inceptPage = state;

function setStatus(text) {
  $('status').textContent = text;
}

function showError(message) {
  const li = document.createElement('li');
  li.textContent = message;
  $('errors').append(li);
  console.warn(`incept page: ${message}`); // a handled failure, shown in the page
}

/** Runs one user action: busy while it runs, its failure shown in the page, never a broken page. */
async function act(what, fn) {
  if (document.body.dataset.state === 'busy') return;
  document.body.dataset.state = 'busy';
  $('errors').replaceChildren();
  setStatus(`${what}...`);
  try {
    await fn();
    setStatus(`${what}: done.`);
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
    setStatus(`${what}: failed (see above).`);
  } finally {
    document.body.dataset.state = 'ready';
  }
}

// ---- drawing ----

/** Draws RGB (3 bytes a pixel) or RGBA pixels into a canvas of their size. */
function drawPixels(canvas, { width, height, data }) {
  canvas.width = width;
  canvas.height = height;
  const rgba = new ImageData(width, height);
  const step = data.length === width * height * 4 ? 4 : 3;
  for (let p = 0; p < width * height; p++) {
    rgba.data[p * 4] = data[p * step];
    rgba.data[p * 4 + 1] = data[p * step + 1];
    rgba.data[p * 4 + 2] = data[p * step + 2];
    rgba.data[p * 4 + 3] = 255;
  }
  canvas.getContext('2d').putImageData(rgba, 0, 0);
  return canvas;
}

/** A decoded image (RGB floats 0..255) as a thumbnail figure with a caption. */
function thumbnail(image, caption) {
  const fig = document.createElement('figure');
  const bytes = Uint8Array.from(image.data, (v) => Math.max(0, Math.min(255, Math.round(v))));
  fig.append(drawPixels(document.createElement('canvas'), { width: image.width, height: image.height, data: bytes }));
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(cap);
  return fig;
}

// ---- model ----

function describeModel(m) {
  const [h, w, c] = m.model.inputShape;
  const classes = m.classes ? `${m.classes.length} named classes` : `${m.model.shapeOf(m.output).at(-1)} classes`;
  return `${m.source}: input ${h}x${w}x${c}, output '${m.output}' (${classes})`;
}

async function useOpened(opened) {
  state.current?.model.dispose();
  state.trained = null;
  state.base = opened;
  state.current = { ...opened, model: new incept.Model(state.rt, opened.build) };
  $('model-info').textContent = describeModel(state.current);
}

async function openModelFile(file) {
  const opened = incept.openModelBytes(new Uint8Array(await file.arrayBuffer()), file.name);
  if (!opened.preprocessing) throw new Error(`${file.name}: the model's input is not an RGB image; this page classifies images`);
  await useOpened(opened);
}

/** Several files chosen at once: a TF.js model.json and its weight shards. */
async function openModelFileSet(files) {
  const bytes = new Map();
  for (const file of files) bytes.set(file.name, new Uint8Array(await file.arrayBuffer()));
  const opened = incept.openModelFiles(bytes);
  if (!opened.preprocessing) throw new Error(`${opened.source}: the model's input is not an RGB image; this page classifies images`);
  await useOpened(opened);
}

/** One file: a model file; several: a TF.js model with its shards. */
function openChosenModel(files) {
  if (files.length === 1) return act(`Opening ${files[0].name}`, () => openModelFile(files[0]));
  return act(`Opening the TF.js model in ${files.length} files`, () => openModelFileSet(files));
}

async function tinyModel() {
  const base = incept.randomInception({ numClasses: 10, depthMultiplier: 0.1, inputSize: 75, auxLogits: false, seed: 1 });
  await useOpened({ ...base, source: 'tiny Inception v3 (random weights)', output: 'Predictions', probabilities: true, classes: null, format: 'random', notes: [] });
}

// ---- images ----

/** Decodes the chosen files; from a folder, only the PNG and JPEG names (folders hold other files). */
async function addImageFiles(files, labelOf, fromFolder = false) {
  const added = [];
  for (const file of files) {
    if (fromFolder && !/\.(png|jpe?g)$/i.test(file.name)) continue;
    const image = await incept.decodeImageBlob(file, file.webkitRelativePath || file.name);
    added.push({ name: file.name, image, label: labelOf(file) });
  }
  if (added.length === 0) throw new Error('no PNG or JPEG files among the files chosen');
  setImages(added);
}

/** Two classes a head can learn from a few examples: warm discs and cool stripes, with noise. */
function sampleImages(count = 8, size = 96) {
  const out = [];
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = 0; i < count; i++) {
    const cls = i % 2;
    const data = new Float32Array(size * size * 3);
    const cx = size * (0.3 + 0.4 * rand());
    const cy = size * (0.3 + 0.4 * rand());
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = cls === 0 ? Math.hypot(x - cx, y - cy) < size / 4 : Math.floor((x + y) / 8) % 2 === 0;
        const rgb = inside ? (cls === 0 ? [220, 90, 40] : [40, 110, 210]) : [235, 225, 205];
        for (let c = 0; c < 3; c++) data[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, rgb[c] + (rand() - 0.5) * 40));
      }
    }
    out.push({ name: `${cls === 0 ? 'disc' : 'stripes'}_${i}.png`, image: { width: size, height: size, data }, label: cls === 0 ? 'disc' : 'stripes' });
  }
  return out;
}

function setImages(list) {
  state.images = list;
  state.classes = [...new Set(list.map((x) => x.label).filter((l) => l !== null))].sort();
  $('image-list').replaceChildren(...list.slice(0, 24).map((x) => thumbnail(x.image, x.label ?? x.name)));
  const labelled = list.filter((x) => x.label !== null).length;
  $('image-info').textContent = `${list.length} images; ${labelled} labelled, in ${state.classes.length} classes${state.classes.length ? ` (${state.classes.join(', ')})` : ''}.`;
}

// ---- classify ----

function needModelAndImages() {
  if (!state.current) throw new Error('open a model first (step 1)');
  if (state.images.length === 0) throw new Error('choose some images first (step 2)');
}

async function classifyAll() {
  needModelAndImages();
  const top = Math.max(1, Number($('top-k').value) || 3);
  const results = await incept.classifyImages(state.current, state.images.map((x) => x.image), top);
  const rows = results.map((preds, i) => {
    const tr = document.createElement('tr');
    const text = preds.map((p) => `${p.label} ${(p.prob * 100).toFixed(1)}%`).join(', ');
    tr.innerHTML = '<td></td><td></td><td></td>';
    tr.children[0].textContent = state.images[i].name;
    tr.children[1].textContent = state.images[i].label ?? '';
    tr.children[2].textContent = text;
    return tr;
  });
  const head = document.createElement('tr');
  head.innerHTML = '<th>image</th><th>label</th><th>top predictions</th>';
  $('predictions').replaceChildren(head, ...rows);
  state.lastPredictions = results;
}

// ---- fine-tuning, ROC ----

/** For an imported graph: the input of the layer that makes its class scores. */
function guessCut(graph, output) {
  let v = graph.has(output) ? output : graph.endPoint(output);
  for (let hops = 0; hops < 12; hops++) {
    const n = graph.producer(v);
    if (!n) break;
    if (['conv2d', 'matmul', 'gemm', 'dense'].includes(n.op)) return n.inputs[0];
    v = n.inputs[0];
  }
  throw new Error(`cannot tell where to cut ${graph.name}: give the value that feeds its classifier ("cut at")`);
}

function trainingSet(spec) {
  const labelled = state.images.filter((x) => x.label !== null);
  if (state.classes.length < 2) throw new Error(`fine-tuning needs labelled images of at least 2 classes (have ${state.classes.length}); use a folder of class folders or the sample images`);
  const [h, w] = spec.size;
  const images = new Float32Array(labelled.length * h * w * 3);
  labelled.forEach((x, i) => images.set(incept.preprocessImage(x.image, spec), i * h * w * 3));
  const labels = Int32Array.from(labelled, (x) => state.classes.indexOf(x.label));
  return { images, labels };
}

function drawLoss(losses) {
  const train = losses.map((loss, step) => ({ step: step + 1, loss }));
  const fig = incept.trainingCurvesFigure({ train }, { title: 'Fine-tuning loss', width: 640, panelHeight: 300 });
  drawPixels($('loss-canvas'), fig.canvas);
}

async function fineTune() {
  needModelAndImages();
  const base = state.base;
  const steps = Math.max(1, Number($('steps').value) || 1);
  const batch = Math.max(1, Number($('batch').value) || 1);
  const lr = Number($('lr').value) || 0.01;
  const inception = base.meta?.architecture === 'inception_v3';
  const cutAt = inception ? undefined : $('cut-at').value.trim() || guessCut(base.graph, base.output);
  const tm = await incept.replaceHead(base, { head: state.classes.length, cutAt, classes: state.classes, rt: state.rt });
  const { images, labels } = trainingSet(tm.preprocessing);
  const losses = [];
  const t0 = performance.now();
  await incept.trainHead(tm, images, labels, {
    steps,
    batch,
    learningRate: lr,
    onStep: (step, loss) => {
      losses.push(loss);
      drawLoss(losses);
      $('train-info').textContent = `step ${step + 1} of ${steps}: loss ${loss.toFixed(4)} (${((performance.now() - t0) / (step + 1) / 1000).toFixed(2)} s a step)`;
    },
  });
  state.losses = losses;
  state.current?.model.dispose();
  state.current = { model: tm.model, preprocessing: tm.preprocessing, output: tm.logits, probabilities: false, classes: state.classes, source: `${base.source} + new head` };
  state.trained = { tm, images, labels };
  $('model-info').textContent = describeModel(state.current);
  await drawRoc(tm, images, labels);
}

async function drawRoc(tm, images, labels) {
  const k = state.classes.length;
  const logits = (await tm.model.predict(images, { outputs: [tm.logits] }))[tm.logits];
  const probs = new Float32Array(logits.length);
  for (let i = 0; i < labels.length; i++) probs.set(softmaxRow(logits.subarray(i * k, (i + 1) * k)), i * k);
  const series = [];
  if (k === 2) {
    const curve = incept.rocCurve(Float32Array.from(labels, (_, i) => probs[i * 2 + 1]), Array.from(labels, (l) => l === 1));
    series.push({ label: `${state.classes[1]} vs ${state.classes[0]}`, fpr: curve.fpr, tpr: curve.tpr });
  } else {
    const ovr = incept.oneVsRestRoc(probs, labels, k);
    ovr.perClass.forEach((c, i) => c.curve && series.push({ label: state.classes[i], fpr: c.curve.fpr, tpr: c.curve.tpr }));
  }
  if (series.length === 0) throw new Error('no class has both positive and negative images: no ROC curve');
  drawPixels($('roc-canvas'), incept.rocCurveFigure(series, { title: 'ROC (training images)', width: 480, height: 450 }).canvas);
  const aucs = series.map((s) => `${s.label}: AUC ${incept.auc(s).toFixed(3)}`).join('; ');
  $('roc-info').textContent = `On the ${labels.length} labelled images the head was trained on (optimistic): ${aucs}.`;
}

function softmaxRow(row) {
  const max = Math.max(...row);
  const e = Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

// ---- saliency ----

async function saliencyMaps() {
  needModelAndImages();
  const { model, preprocessing: spec } = state.current;
  const [h, w] = spec.size;
  const figures = [];
  for (const x of state.images.slice(0, 4)) {
    const input = incept.preprocessImage(x.image, spec);
    const s = await incept.saliency(model, input, { method: 'vanilla' });
    const shown = incept.toDisplayImage(input, h, w, { mean: spec.mean, std: spec.std });
    const over = incept.overlay(shown, s.map);
    const fig = document.createElement('figure');
    fig.append(drawPixels(document.createElement('canvas'), over));
    const cap = document.createElement('figcaption');
    cap.textContent = `${x.name}: class ${state.current.classes?.[s.target] ?? s.target}`;
    fig.append(cap);
    figures.push(fig);
  }
  $('saliency-list').replaceChildren(...figures);
}

// ---- start ----

async function start() {
  try {
    state.rt = await incept.getRuntime();
  } catch (e) {
    $('adapter').textContent = `No WebGPU: ${e.message}`;
    setStatus('This page needs WebGPU.');
    document.body.dataset.state = 'no-gpu';
    return;
  }
  const f = state.rt.features;
  $('adapter').textContent = `WebGPU adapter: ${state.rt.adapterName} (subgroups ${f.has('subgroups') ? 'yes' : 'no'}, shader-f16 ${f.has('shader-f16') ? 'yes' : 'no'})`;
  $('model-file').addEventListener('change', (ev) => ev.target.files.length > 0 && openChosenModel([...ev.target.files]));
  $('tiny-model').addEventListener('click', () => act('Building the tiny Inception v3', tinyModel));
  $('image-files').addEventListener('change', (ev) => act('Decoding the images', () => addImageFiles([...ev.target.files], () => null)));
  $('image-folder').addEventListener('change', (ev) =>
    act('Decoding the folder', () => addImageFiles([...ev.target.files], (file) => file.webkitRelativePath.split('/').slice(-2, -1)[0] ?? null, true)),
  );
  $('sample-images').addEventListener('click', () => act('Generating sample images', async () => setImages(sampleImages())));
  $('classify-btn').addEventListener('click', () => act('Classifying', classifyAll));
  $('train-btn').addEventListener('click', () => act('Fine-tuning', fineTune));
  $('saliency-btn').addEventListener('click', () => act('Saliency', saliencyMaps));
  document.body.dataset.state = 'ready';
  setStatus('Ready: open a model and some images.');
}

start();

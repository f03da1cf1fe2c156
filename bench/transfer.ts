// `npm run bench -- transfer`: the two transfer-learning experiments end to end (see
// src/train/transfer-experiments.ts) and the peer, with every figure, wall time and images per
// second. Options: --isic DIR, --npz FILE, --isic-size N (default 180, the images' own size),
// --retina-size N (default 75), --only esteva|gulshan, --isic-settings / --retina-settings
// 'head:60,top:1:4,scratch' (a head may add ':multi' = train on pooled Mixed_6a + 6b + 6c, and
// ':wd=X' = weight decay X), --retina-augment 'rot90,rot180,hflip' (dihedral variants' features: extra
// training rows and test-time averaging), --limit N (first N images per class: a quick run), --cache DIR, --no-peer,
// --report FILE.html (default out/transfer-report.html: tables, ROC curves, confusion matrices; --no-report: none).
import { join, resolve } from 'node:path';
import { getRuntime } from '../src/gpu/runtime.ts';
import { openBackbone } from '../src/train/backbones.ts';
import { DIHEDRAL, isicMalignant } from '../src/train/medical-data.ts';
import { oneVsRestRoc, rocAuc } from '../src/train/roc.ts';
import { type TransferExperimentResult, type TransferSettingResult, writeTransferReport } from '../src/report/transfer-report.ts';
import { binaryFigures, estevaFigures, gradeFigures, malignantScores, rocBand } from '../src/train/transfer-eval.ts';
import { MULTI_LAYER, runEsteva, runGulshan } from '../src/train/transfer-experiments.ts';
import { gather } from '../src/train/transfer-settings.ts';
import { type Report, UsageError, result } from './report.ts';
import { logisticRegressionPeer } from './transfer_peer.ts';

const SHARED = new URL('../../shared/fixtures/', import.meta.url).pathname;

interface Args {
  isic: string;
  npz: string;
  isicSize: number;
  retinaSize: number;
  only: string | null;
  isicSettings: string;
  retinaSettings: string;
  limit?: number;
  cache: string;
  peer: boolean;
  retinaAugment: number[];
  /** The HTML report's path (null: none). */
  report: string | null;
}

function parse(argv: string[]): Args {
  const a: Args = {
    isic: join(SHARED, 'isic-skin'),
    npz: join(SHARED, 'retinamnist/retinamnist.npz'),
    isicSize: 180,
    retinaSize: 75,
    only: null,
    isicSettings: 'head:80:multi:wd=0.06,top:1:4,scratch',
    retinaSettings: 'head:80:wd=0.06,top:1:6,scratch',
    cache: '.cache/features',
    peer: true,
    retinaAugment: [],
    report: 'out/transfer-report.html',
  };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i] ?? (() => { throw new UsageError(`${argv[i - 1]} needs a value`); })();
    switch (argv[i]) {
      case '--isic': a.isic = v(); break;
      case '--npz': a.npz = v(); break;
      case '--isic-size': a.isicSize = Number(v()); break;
      case '--retina-size': a.retinaSize = Number(v()); break;
      case '--only': a.only = v(); break;
      case '--isic-settings': a.isicSettings = v(); break;
      case '--retina-settings': a.retinaSettings = v(); break;
      case '--limit': a.limit = Number(v()); break;
      case '--cache': a.cache = v(); break;
      case '--no-peer': a.peer = false; break;
      case '--retina-augment': a.retinaAugment = parseVariants(v()); break;
      case '--report': a.report = v(); break;
      case '--no-report': a.report = null; break;
      default: throw new UsageError(`bench transfer: unknown option ${argv[i]}`);
    }
  }
  return a;
}

/** 'head:60,top:1:4,scratch' -> settings with epochs (scratch: a time budget, 1000 epochs cap). */
export function parseSettings(spec: string) {
  return spec.split(',').map((s) => {
    const parts = s.trim().split(':');
    if (parts[0] === 'head') return { setting: 'head', epochs: Number(parts[1] ?? 60), learningRate: 1e-3, ...headOptions(s, parts.slice(2)) };
    if (parts[0] === 'top') return { setting: `top:${parts[1]}`, epochs: Number(parts[2] ?? 4), learningRate: 1e-3 };
    if (parts[0] === 'scratch') return { setting: 'scratch', epochs: 1000, learningRate: 1e-3 };
    throw new UsageError(`bench transfer: setting '${s}' is not head:EPOCHS, top:N:EPOCHS or scratch`);
  });
}

/** 'rot90,hflip' -> their DIHEDRAL indices. */
function parseVariants(list: string): number[] {
  return list.split(',').map((name) => {
    const k = DIHEDRAL.indexOf(name.trim());
    if (k < 1) throw new UsageError(`bench transfer: --retina-augment '${name}' is not one of ${DIHEDRAL.slice(1).join(', ')}`);
    return k;
  });
}

/** A head's extra options: 'multi' (the multi-layer pooled features) and 'wd=X' (weight decay). */
function headOptions(spec: string, opts: string[]): { input?: string; weightDecay?: number } {
  const out: { input?: string; weightDecay?: number } = {};
  for (const o of opts) {
    if (o === 'multi') out.input = MULTI_LAYER;
    else if (/^wd=[0-9.e-]+$/.test(o)) out.weightDecay = Number(o.slice(3));
    else throw new UsageError(`bench transfer: setting '${spec}': '${o}' is not multi or wd=NUMBER`);
  }
  return out;
}

/** The peer's L2 strengths, chosen among on validation (0.03 and 0.1 added: validation preferred 0.03 on ISIC). */
const PEER_L2S = [1e-3, 1e-2, 3e-2, 1e-1];
const peerSummary = (f: { backend: string; l2: number; seconds: number }) => ({ fit: f.backend, l2: f.l2, seconds: f.seconds });

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const strip = ({ probs, curve, scores, ...rest }: Record<string, unknown>) => rest;

type ViewFigures = Pick<TransferSettingResult, 'binary' | 'accuracy' | 'meanAuc' | 'operatingPoint' | 'confusion'> & { curve: { fpr: Float64Array; tpr: Float64Array }; scores: Float64Array };

/** A setting's row of the HTML report from the figures the bench computed, with a 95% bootstrap band of its ROC (trained settings only). */
function viewRow(name: string, peer: boolean, run: { validationScore?: number; trainSeconds?: number; imagesPerSecond?: number }, f: ViewFigures, positives: Uint8Array): TransferSettingResult {
  const { curve, scores, ...figures } = f;
  return { name, peer, ...run, ...figures, curve, band: peer ? undefined : rocBand(scores, positives) };
}

const estevaView = (f: unknown): ViewFigures => {
  const e = f as ReturnType<typeof estevaFigures>;
  return { binary: e.benignMalignant, accuracy: e.fineAccuracy, confusion: e.confusion, curve: e.curve, scores: e.scores };
};
const gulshanView = (f: unknown): ViewFigures => {
  const g = f as ReturnType<typeof gradeFigures>;
  return { binary: g.referable, accuracy: g.accuracy, meanAuc: g.meanAuc, operatingPoint: g.referable.operatingPoint, confusion: g.confusion, curve: g.curve, scores: g.scores };
};

async function esteva(a: Args) {
  const rt = await getRuntime();
  const bb = openBackbone('keras-inception-v3');
  const r = await runEsteva({ rt, backbone: bb, inputSize: a.isicSize, settings: parseSettings(a.isicSettings), cacheDir: a.cache, isicDir: a.isic, limit: a.limit, log });
  // (d) the peer: logistic regression (TF.js) on the pooled Mixed_6c features, L2 chosen on validation;
  // and, when a head trained on the multi-layer features, the same peer on those features too.
  const cls = r.split.taxonomyClasses;
  const score = (p: Float32Array, l: Int32Array) => rocAuc(malignantScores(p, cls, r.split.taxonomy), isicMalignant(r.split.classes, l));
  const held = Int32Array.from(r.index.heldout, (i) => r.labels[i]);
  const peerOn = async (feature: string) => {
    const rows = (ix: Int32Array) => ({ x: gather(r.features[feature], ix, r.labels.length), labels: Int32Array.from(ix, (i) => r.labels[i]) });
    const c = r.features[feature].length / r.labels.length;
    const fit = await logisticRegressionPeer({ train: rows(r.index.train), validation: rows(r.index.validation), evaluate: rows(r.index.heldout).x, channels: c, classes: r.split.classes.length }, score, { l2s: PEER_L2S });
    return { fit, figures: estevaFigures(fit.probs, held, cls, r.split.taxonomy, isicMalignant(r.split.classes, held)) };
  };
  const peer = a.peer ? await peerOn('global_pool') : null;
  const peerMulti = a.peer && r.features[MULTI_LAYER] ? await peerOn(MULTI_LAYER) : null;
  // Test folder alone (the 118 images every copy of this data set reports on).
  const fromTest = Int32Array.from(r.split.heldoutFromTest.flatMap((t, i) => (t ? [i] : [])));
  const testOnly = (probs: Float32Array) => {
    const k = r.split.classes.length;
    const p = Float32Array.from({ length: fromTest.length * k }, (_, j) => probs[fromTest[Math.floor(j / k)] * k + (j % k)]);
    const l = Int32Array.from(fromTest, (i) => held[i]);
    return binaryFigures(malignantScores(p, cls, r.split.taxonomy), isicMalignant(r.split.classes, l)).auc;
  };
  return {
    dataset: r.dataset,
    inputSize: r.inputSize,
    featureSeconds: r.featureSeconds,
    featureImagesPerSecond: r.featureImagesPerSecond,
    settings: r.results.map((s) => ({ ...s.summary, heldout: strip(s.figures as Record<string, unknown>), testFolderAuc: testOnly((s.figures as { probs: Float32Array }).probs) })),
    peer: peer && { method: 'multinomial logistic regression on pooled Mixed_6c (= Keras mixed5) features, standardised', ...peerSummary(peer.fit), validationAuc: peer.fit.validationScore, heldout: strip(peer.figures as never), testFolderAuc: testOnly(peer.fit.probs) },
    peerMultiLayer: peerMulti && { method: 'the same peer on the multi-layer features (pooled Mixed_6a + 6b + 6c, standardised)', ...peerSummary(peerMulti.fit), validationAuc: peerMulti.fit.validationScore, heldout: strip(peerMulti.figures as never), testFolderAuc: testOnly(peerMulti.fit.probs) },
    seconds: r.seconds,
    view: ((): TransferExperimentResult => {
      const positives = isicMalignant(r.split.classes, held);
      const peers = [[peer, 'peer (d)'], [peerMulti, 'peer (d) multi-layer']] as const;
      return {
        kind: 'esteva',
        classes: r.split.classes,
        settings: [
          ...r.results.map((s) => viewRow(s.summary.name, false, s.summary, estevaView(s.figures), positives)),
          ...peers.flatMap(([p, name]) => (p ? [viewRow(name, true, { validationScore: p.fit.validationScore, trainSeconds: p.fit.seconds }, estevaView(p.figures), positives)] : [])),
        ],
        run: { data: a.isic, split: { train: r.dataset.train, validation: r.dataset.validation, 'held out': r.dataset.heldout }, inputSize: r.inputSize, backbone: 'keras-inception-v3 (ImageNet)', seed: 0, seconds: r.seconds, featureSeconds: r.featureSeconds },
      };
    })(),
  };
}

async function gulshan(a: Args) {
  const rt = await getRuntime();
  const bb = openBackbone('keras-inception-v3');
  const r = await runGulshan({ rt, backbone: bb, inputSize: a.retinaSize, settings: parseSettings(a.retinaSettings), cacheDir: a.cache, npz: a.npz, limit: a.limit, augment: a.retinaAugment, log });
  const meanAuc = (p: Float32Array, l: Int32Array) => oneVsRestRoc(p, l, 5).macroAuc;
  // The peer as defined: fitted on the images themselves (the first block of rows when dihedral
  // variants' rows follow), without augmentation or test-time averaging.
  const n = r.labels.length;
  const peerOn = async (feature: string) => {
    const own = r.features[feature].subarray(0, r.features[feature].length / r.augment.length);
    const rows = (ix: Int32Array) => ({ x: gather(own, ix, n), labels: Int32Array.from(ix, (i) => r.labels[i]) });
    const c = own.length / n;
    const val = rows(r.index.validation);
    const fit = await logisticRegressionPeer({ train: rows(r.index.train), validation: val, evaluate: new Float32Array([...rows(r.index.test).x, ...val.x]), channels: c, classes: 5 }, meanAuc, { l2s: PEER_L2S });
    const nt = r.index.test.length;
    return { fit, figures: gradeFigures({ probs: fit.probs.slice(0, nt * 5), labels: rows(r.index.test).labels }, { probs: fit.probs.slice(nt * 5), labels: val.labels }) };
  };
  const peer = await peerOn('global_pool');
  const peerMulti = r.features[MULTI_LAYER] ? await peerOn(MULTI_LAYER) : null;
  return {
    dataset: r.dataset,
    inputSize: r.inputSize,
    featureSeconds: r.featureSeconds,
    featureImagesPerSecond: r.featureImagesPerSecond,
    augment: r.augment,
    settings: r.results.map((s) => ({ ...s.summary, test: strip(s.figures as Record<string, unknown>) })),
    peer: { method: 'multinomial logistic regression on pooled Mixed_6c features, standardised', ...peerSummary(peer.fit), validationMeanAuc: peer.fit.validationScore, test: strip(peer.figures as never) },
    peerMultiLayer: peerMulti && { method: 'the same peer on the multi-layer features (pooled Mixed_6a + 6b + 6c, standardised)', ...peerSummary(peerMulti.fit), validationMeanAuc: peerMulti.fit.validationScore, test: strip(peerMulti.figures as never) },
    published: { source: 'MedMNIST v2 (Yang et al. 2023), RetinaMNIST test split', accuracy: [0.493, 0.531], auc: [0.69, 0.75], best: { accuracy: 0.531, auc: 0.75 } },
    seconds: r.seconds,
    view: ((): TransferExperimentResult => {
      const positives = Uint8Array.from(r.index.test, (i) => (r.labels[i] >= 2 ? 1 : 0));
      const peers = [[peer, 'peer (d)'], [peerMulti, 'peer (d) multi-layer']] as const;
      return {
        kind: 'gulshan',
        classes: ['0', '1', '2', '3', '4'].map((g) => `grade ${g}`),
        settings: [
          ...r.results.map((s) => viewRow(s.summary.name, false, s.summary, gulshanView(s.figures), positives)),
          ...peers.flatMap(([p, name]) => (p ? [viewRow(name, true, { validationScore: p.fit.validationScore, trainSeconds: p.fit.seconds }, gulshanView(p.figures), positives)] : [])),
        ],
        run: { data: `${a.npz} (${r.dataset.imageSize} px${r.augment.length > 1 ? `; dihedral variants ${r.augment.join(', ')}` : ''})`, split: { train: r.dataset.train, validation: r.dataset.validation, test: r.dataset.test }, inputSize: r.inputSize, backbone: 'keras-inception-v3 (ImageNet)', seed: 0, seconds: r.seconds, featureSeconds: r.featureSeconds },
      };
    })(),
  };
}

export async function run(argv: string[]): Promise<Report> {
  const a = parse(argv);
  const rt = await getRuntime();
  const t0 = performance.now();
  const figures: Record<string, unknown> = {};
  const views: TransferExperimentResult[] = [];
  const cases = [];
  if (a.only !== 'gulshan') {
    const { view, ...e } = await esteva(a);
    figures.esteva = e;
    views.push(view);
    for (const s of e.settings) cases.push(result(`esteva ${s.name} (ms per training image)`, null, 1000 / s.imagesPerSecond, null, null));
    cases.push(result('esteva backbone features (ms per image)', null, 1000 / e.featureImagesPerSecond, null, null));
    for (const s of e.settings) log(`esteva ${s.name}: held-out AUC ${fmt(s.heldout.benignMalignant as never)}, 9-class accuracy ${(s.heldout.fineAccuracy as number).toFixed(3)}`);
    if (e.peer) log(`esteva peer (d): held-out AUC ${fmt(e.peer.heldout.benignMalignant as never)}`);
    if (e.peerMultiLayer) log(`esteva peer (d) on the multi-layer features: held-out AUC ${fmt(e.peerMultiLayer.heldout.benignMalignant as never)}`);
  }
  if (a.only !== 'esteva') {
    const { view, ...g } = await gulshan(a);
    figures.gulshan = g;
    views.push(view);
    for (const s of g.settings) cases.push(result(`gulshan ${s.name} (ms per training image)`, null, 1000 / s.imagesPerSecond, null, null));
    cases.push(result('gulshan backbone features (ms per image)', null, 1000 / g.featureImagesPerSecond, null, null));
    for (const s of g.settings) log(`gulshan ${s.name}: test accuracy ${(s.test.accuracy as number).toFixed(3)}, mean AUC ${(s.test.meanAuc as number).toFixed(3)}, referable AUC ${fmt(s.test.referable as never)}`);
    log(`gulshan peer (d): accuracy ${(g.peer.test.accuracy as number).toFixed(3)}, mean AUC ${(g.peer.test.meanAuc as number).toFixed(3)}`);
    if (g.peerMultiLayer) log(`gulshan peer (d) on the multi-layer features: accuracy ${(g.peerMultiLayer.test.accuracy as number).toFixed(3)}, mean AUC ${(g.peerMultiLayer.test.meanAuc as number).toFixed(3)}`);
  }
  figures.wallSeconds = (performance.now() - t0) / 1000;
  if (a.report) {
    // npm runs scripts from the package root; a relative path means the caller's directory (as --json).
    const file = resolve(process.env.INIT_CWD ?? process.cwd(), a.report);
    writeTransferReport(file, { date: new Date().toISOString(), wallSeconds: figures.wallSeconds as number, adapter: rt.adapterName, experiments: views });
    log(`wrote ${file}`);
  }
  return { suite: 'transfer', adapter: rt.adapterName, timing: 'wall clock of training and feature extraction (shared 2-core machine: varies with load)', cases, figures };
}

function fmt(b: { auc: number; aucLower: number; aucUpper: number }): string {
  return `${b.auc.toFixed(3)} (95% CI ${b.aucLower.toFixed(3)}-${b.aucUpper.toFixed(3)})`;
}

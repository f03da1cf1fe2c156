// The transfer experiments' HTML page from a small synthetic result (no experiment is run): the
// tables carry the figures given, the best setting is the one chosen on validation (never the peer),
// aims below their mark say so, the pictures are embedded PNGs, and the file is written atomically.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type TransferExperimentResult, type TransferSettingResult, aims, bestSetting, renderTransferReport, writeTransferReport } from '../src/report/transfer-report.ts';

const curve = { fpr: [0, 0.1, 0.5, 1], tpr: [0, 0.6, 0.9, 1] };
const band = { fpr: [0, 0.5, 1], lower: [0, 0.8, 1], upper: [0, 0.95, 1] };

function setting(name: string, auc: number, validationScore: number, extra: Partial<TransferSettingResult> = {}): TransferSettingResult {
  return {
    name,
    validationScore,
    trainSeconds: 12.5,
    imagesPerSecond: 321.4,
    binary: { auc, aucLower: auc - 0.04, aucUpper: auc + 0.03, atSpecificity: [{ specificity: 0.9, sensitivity: 0.612 }, { specificity: 0.95, sensitivity: 0.433 }] },
    accuracy: 0.577,
    confusion: [[5, 1], [2, 7]],
    curve,
    band,
    ...extra,
  };
}

function esteva(): TransferExperimentResult {
  return {
    kind: 'esteva',
    classes: ['nevus', 'melanoma'],
    settings: [
      setting('head:multi:wd=0.06', 0.861, 0.85),
      setting('top:1', 0.842, 0.87), // the best on validation, though not on held-out AUC
      setting('peer (d)', 0.83, 0.9, { peer: true, imagesPerSecond: undefined }),
    ],
    run: { data: 'isic-skin', split: { train: 40, validation: 10, 'held out': 15 }, inputSize: 180, backbone: 'keras-inception-v3', seed: 0, seconds: 99, featureSeconds: 30 },
  };
}

function gulshan(): TransferExperimentResult {
  const op = { target: 0.975, test: { sensitivity: 0.951, specificity: 0.402 } };
  const grades = Array.from({ length: 5 }, (_, i) => Array.from({ length: 5 }, (_, j) => (i === j ? 9 : 1)));
  return {
    kind: 'gulshan',
    classes: ['0', '1', '2', '3', '4'],
    settings: [
      setting('head:wd=0.06', 0.811, 0.81, { meanAuc: 0.768, accuracy: 0.545, operatingPoint: op, confusion: grades }),
      setting('peer (d)', 0.79, 0.8, { peer: true, meanAuc: 0.741, accuracy: 0.51, operatingPoint: op, confusion: grades }),
    ],
    run: { data: 'retinamnist.npz', split: { train: 1080, validation: 120, test: 400 }, inputSize: 75, backbone: 'keras-inception-v3', seed: 0, seconds: 50, featureSeconds: 1 },
  };
}

const input = () => ({ date: '2026-12-06T10:00:00Z', wallSeconds: 150, adapter: 'llvmpipe', experiments: [esteva(), gulshan()] });
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('transfer report', () => {
  it('chooses the best setting on validation among the trained settings, never the peer', () => {
    expect(bestSetting(esteva().settings)?.name).toBe('top:1');
  });

  it('judges the aims: ISIC below 0.88 and +0.05 over the peer are not reached; RetinaMNIST above 0.750 is', () => {
    const e = aims(esteva());
    expect(e.map((a) => a.reached)).toEqual([false, false]);
    expect(e[1].value).toBe('+0.012'); // 0.842 - 0.830
    const g = aims(gulshan());
    expect(g.map((a) => a.reached)).toEqual([true, true, true]);
    expect(g[2].value).toBe('0.768');
  });

  it('renders every setting\'s figures, the marks, the aims and embedded PNG figures', () => {
    const html = renderTransferReport(input());
    expect(html).toContain('0.842 <span class="ci">(0.802-0.872)</span>');
    expect(html).toContain('<td>0.612</td><td>0.433</td><td>0.577</td><td>12.5</td><td>321.4</td>');
    expect(html).toMatch(/top:1 <span class="tag best">best \(chosen on validation\)<\/span>/);
    expect(html).toMatch(/peer \(d\) <span class="tag peer">peer \(d\)<\/span>/);
    expect(html).toContain('aim not reached');
    expect(html).toContain('<td>0.951 / 0.402</td>'); // Gulshan's operating point on test
    expect(html).toContain('<td>0.768</td>');
    expect(html).toContain('held out 15');
    // Two experiments, each with a ROC plot and a confusion matrix.
    expect(html.match(/<img src="data:image\/png;base64,/g)?.length).toBe(4);
  });

  it('refuses an experiment without settings, naming it', () => {
    const bad = { ...input(), experiments: [{ ...gulshan(), settings: [] }] };
    expect(() => renderTransferReport(bad)).toThrow(/gulshan has no settings/);
  });

  it('writes the page atomically: the complete file and no temporary file left', () => {
    const dir = mkdtempSync(join(tmpdir(), 'transfer-report-'));
    dirs.push(dir);
    const file = join(dir, 'sub', 'report.html');
    writeTransferReport(file, input());
    expect(readFileSync(file, 'utf8')).toBe(renderTransferReport(input()));
    expect(readdirSync(join(dir, 'sub'))).toEqual(['report.html']);
    // A failed render leaves the previous page as it was.
    expect(() => writeTransferReport(file, { ...input(), experiments: [] })).toThrow(/no experiments/);
    expect(existsSync(file) && readFileSync(file, 'utf8').includes('top:1')).toBe(true);
  });
});

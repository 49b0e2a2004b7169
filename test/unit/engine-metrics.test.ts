/** Host-side pieces of the training layer: metrics, schedules, layouts, checkpoints, spec parsing. */
import { describe, expect, it } from 'vitest';
import { accuracy, balancedAccuracy, dice, iou, meanDice, rocAuc, argmaxRows } from '../../src/engine/metrics.ts';
import { scheduledLr, stepHyper } from '../../src/engine/optimizers.ts';
import { makeLayout } from '../../src/engine/layout.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/engine/checkpoint.ts';
import { parseModelSpec, parseOptimizerSpec } from '../../src/engine/spec.ts';
import { CohortError } from '../../src/util/errors.ts';

const f = (xs: number[]): Float32Array => Float32Array.from(xs);

describe('metrics', () => {
  it('accuracy, balanced accuracy and argmax', () => {
    expect(argmaxRows(f([0.1, 0.9, 0.8, 0.2, 0.3, 0.7]), 2)).toEqual(f([1, 0, 1]));
    expect(accuracy(f([1, 0, 1, 1]), f([1, 0, 0, 1]))).toBe(0.75);
    // 3 of class 0 all right, 1 of class 1 wrong: plain 0.75, balanced (1 + 0) / 2
    expect(balancedAccuracy(f([0, 0, 0, 0]), f([0, 0, 0, 1]))).toBe(0.5);
  });
  it('ROC AUC counts ties as one half and skips unknown labels', () => {
    expect(rocAuc(f([0.1, 0.4, 0.35, 0.8]), f([0, 0, 1, 1]))).toBe(0.75);
    expect(rocAuc(f([0.5, 0.5]), f([0, 1]))).toBe(0.5);
    expect(rocAuc(f([0.9, 0.1, 0.3]), f([1, 0, Number.NaN]))).toBe(1);
    expect(Number.isNaN(rocAuc(f([0.1, 0.2]), f([1, 1])))).toBe(true);
  });
  it('Dice and IoU', () => {
    const p = f([0.9, 0.8, 0.1, 0.7]), t = f([1, 1, 0, 0]);
    expect(dice(p, t)).toBeCloseTo((2 * 2) / (3 + 2), 6);
    expect(iou(p, t)).toBeCloseTo(2 / 3, 6);
    expect(dice(f([0, 0]), f([0, 0]))).toBe(1);
    expect(meanDice(f([1, 0, 0, 0]), f([1, 0, 1, 1]), 2)).toBeCloseTo((1 + 0) / 2, 6);
  });
});

describe('schedules and Adam scalars', () => {
  const opt = parseOptimizerSpec({ type: 'adam', lr: 0.1, schedule: { warmupSteps: 4, cosineSteps: 10, minLr: 0.01 } });
  it('linear warm-up then cosine decay to minLr', () => {
    expect(scheduledLr(opt, 0)).toBeCloseTo(0.025, 9);
    expect(scheduledLr(opt, 3)).toBeCloseTo(0.1, 9);
    expect(scheduledLr(opt, 9)).toBeCloseTo(0.01 + 0.045 * (1 + Math.cos(Math.PI * 0.5)), 9);
    expect(scheduledLr(opt, 100)).toBeCloseTo(0.01, 9);
  });
  it('bias-corrected step size', () => {
    const h = stepHyper(parseOptimizerSpec({ type: 'adam', lr: 0.1 }), 0);
    expect(h.alpha).toBeCloseTo((0.1 * Math.sqrt(0.001)) / 0.1, 9);
    expect(h.eps_hat).toBeCloseTo(1e-8 * Math.sqrt(0.001), 15);
  });
});

describe('layouts and checkpoints', () => {
  it('the layout hash depends on names and shapes, in order', () => {
    const a = makeLayout([{ name: 'w', shape: [2, 3] }, { name: 'b', shape: [3] }]);
    expect(a.length).toBe(9);
    expect(a.entries[1]).toEqual({ name: 'b', shape: [3], offset: 6, length: 3 });
    expect(makeLayout([{ name: 'w', shape: [2, 3] }, { name: 'b', shape: [3] }]).hash).toBe(a.hash);
    expect(makeLayout([{ name: 'w', shape: [3, 2] }, { name: 'b', shape: [3] }]).hash).not.toBe(a.hash);
    expect(makeLayout([{ name: 'b', shape: [3] }, { name: 'w', shape: [2, 3] }]).hash).not.toBe(a.hash);
  });
  it('checkpoints round-trip and refuse truncation', () => {
    const c = { layoutHash: 'abc', stateHash: 'def', step: 7, params: f([1, 2, 3]), state: f([4, 5]) };
    const bytes = encodeCheckpoint(c);
    expect(decodeCheckpoint(bytes)).toEqual(c);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4))).toThrow(/length does not match/);
  });
});

describe('specs', () => {
  it('fills defaults and explains mistakes', () => {
    expect(parseModelSpec({ type: 'unet2d' })).toMatchObject({ base: 8, depth: 2, classes: 1, norm: 'instance' });
    expect(parseModelSpec({ type: 'multitask-unet' })).toMatchObject({ markers: ['idh', '1p19q', 'mgmt', 'grade'] });
    const bad = (raw: unknown): CohortError => { try { parseModelSpec(raw); } catch (e) { return e as CohortError; } throw new Error('accepted'); };
    expect(bad({ type: 'mlp' }).message).toMatch(/classes/);
    expect(bad({ type: 'mlp', classes: 2, hiden: [3] }).message).toMatch(/hiden/);
    expect(bad({ type: 'sequential', layers: [{ type: 'dense', units: 0 }] }).message).toMatch(/layers\[0\]/);
    expect(() => parseOptimizerSpec({ type: 'rmsprop' })).toThrow(/optimizer/);
  });
});

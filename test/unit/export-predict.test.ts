/**
 * Export (issue 14.4, issue 13.2): every zoo model exported with a symbolic batch reloads in a plain onnxruntime-node
 * session and predicts at batch 1 and 3 what Cohort's own eval graph predicts for the same samples.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { Trainer, releaseSessions, type ModelSpec, type LossSpec } from '../../src/engine/index.ts';
import { Rng } from '../../src/util/random.ts';
import type { SampleSet } from '../../src/data/samples.ts';
import { ellipses, tabular } from './engine-fixtures.ts';

afterAll(releaseSessions);

function images(n: number, shape: number[], seed: number, classes: number): SampleSet {
  const rng = new Rng(seed);
  const per = shape.reduce((a, b) => a * b, 1);
  return {
    size: n,
    inputs: { image: { shape, data: Float32Array.from({ length: n * per }, () => rng.normal()) } },
    targets: { label: { shape: [], data: Float32Array.from({ length: n }, (_, i) => i % classes) } },
  };
}

function multimodal(n: number): SampleSet {
  const img = images(n, [1, 8, 8], 3, 3);
  return { size: n, inputs: { image: img.inputs.image, tabular: tabular(n, 5, 4).inputs.features }, targets: img.targets };
}

/** Rows [from, to) of every input as ORT feeds. */
function feeds(data: SampleSet, from: number, to: number): Record<string, ort.Tensor> {
  return Object.fromEntries(Object.entries(data.inputs).map(([name, t]) => {
    const per = t.shape.reduce((a, b) => a * b, 1);
    return [name, new ort.Tensor('float32', t.data.slice(from * per, to * per), [to - from, ...t.shape])];
  }));
}

const ZOO: ReadonlyArray<{ name: string; model: ModelSpec; data: () => SampleSet; loss?: LossSpec }> = [
  { name: 'mlp', model: { type: 'mlp', hidden: [6], classes: 2 }, data: () => tabular(3, 4, 1) },
  { name: 'cnn2d (batch norm)', model: { type: 'cnn2d', channels: [3, 4], norm: 'batch', hidden: [5], classes: 3 }, data: () => images(3, [1, 8, 8], 1, 3) },
  { name: 'cnn3d (group norm)', model: { type: 'cnn3d', channels: [4], norm: 'group', pool: 'avg', classes: 2 }, data: () => images(3, [1, 4, 4, 4], 2, 2) },
  { name: 'unet2d', model: { type: 'unet2d', base: 2, depth: 1 }, data: () => ellipses(3, [8, 8], 1) },
  { name: 'unet3d (group norm)', model: { type: 'unet3d', base: 2, depth: 1, norm: 'group', groups: 2 }, data: () => ellipses(3, [4, 4, 4], 3) },
  { name: 'unet3d (instance norm, depth 2)', model: { type: 'unet3d', base: 2, depth: 2 }, data: () => ellipses(3, [4, 4, 4], 4) },
  { name: 'multitask-unet 3D', model: { type: 'multitask-unet', dims: 3, base: 2, depth: 1, markers: ['idh', 'mgmt'], markerHidden: 4 },
    data: () => ellipses(3, [4, 4, 4], 5, { markers: 2 }) },
  { name: 'multimodal', model: { type: 'multimodal', image: { channels: [3] }, tabular: { hidden: [4] }, hidden: [5], classes: 3 }, data: () => multimodal(3) },
  { name: 'sequential', model: { type: 'sequential', layers: [{ type: 'conv', channels: 3 }, { type: 'batchNorm' }, { type: 'relu' },
    { type: 'maxPool' }, { type: 'flatten' }, { type: 'dense', units: 5 }, { type: 'dropout', ratio: 0.2 }, { type: 'dense', units: 2 }] },
  data: () => images(3, [1, 8, 8], 6, 2) },
];

describe('export with a symbolic batch: every zoo model at batch 1 and 3', () => {
  for (const z of ZOO) {
    it(z.name, async () => {
      const data = z.data();
      const t = await Trainer.create({ model: z.model, loss: z.loss, optimizer: { type: 'sgd', lr: 0.1 }, batchSize: 3, seed: 3, providers: ['cpu'] }, data);
      const expected = await t.predict(data);
      const s = await ort.InferenceSession.create(t.exportOnnx());
      try {
        const all = await s.run(feeds(data, 0, 3));
        const ones = await Promise.all([0, 1, 2].map((i) => s.run(feeds(data, i, i + 1))));
        for (const [out, want] of [['prob', expected.prob], ['markers_prob', expected.markers]] as const) {
          if (!want) { expect(s.outputNames).not.toContain(out); continue; }
          const got3 = all[out].data as Float32Array;
          const got1 = new Float32Array(ones.flatMap((o) => [...(o[out].data as Float32Array)]));
          expect(got3.length).toBe(want.length);
          expect(got1.length).toBe(want.length);
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got3[i] - want[i]), Math.abs(got1[i] - want[i]));
          expect(worst, `${z.name} ${out}`).toBeLessThan(1e-5);
        }
      } finally {
        await s.release();
        await t.dispose();
      }
    });
  }
});

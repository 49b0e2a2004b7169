/**
 * Issue 14.5: a reduction over an empty axis list is the identity (opset 18 ReduceX with an empty axes input and
 * noop_with_empty_axes = 1), never ONNX's default "reduce over all axes". The path is reachable through a sequential
 * model's instanceNorm after a dense layer ([N, C]: no spatial axes). Checked against central finite differences of
 * ORT's float32 forward and, for the whole model, of the Trainer's own loss.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/engine/graph/index.ts';
import { Trainer, releaseSessions } from '../../src/engine/index.ts';
import { checkGradients } from '../helpers/float64/gradcheck.ts';
import { session } from '../helpers/float64/ort.ts';
import * as ort from 'onnxruntime-node';
import { Rng } from '../../src/util/random.ts';
import { tabular } from './engine-fixtures.ts';

afterAll(releaseSessions);

const TOL = 2e-3;

describe('reductions over an empty axis list are the identity', () => {
  it('ReduceSum / ReduceMean / ReduceMax with axes [] return x unchanged (forward in ORT)', async () => {
    const g = new GraphBuilder('empty-axes');
    const x = g.input('x', [3, 4]);
    g.output(g.reduceSum(x, [], true), 'sum');
    g.output(g.reduceMean(x, []), 'mean');
    g.output(g.reduceMax(x, [], true), 'max');
    const data = Float32Array.from({ length: 12 }, (_, i) => i - 5.5);
    const out = await (await session(g)).run({ x: new ort.Tensor('float32', data, [3, 4]) });
    for (const k of ['sum', 'mean', 'max']) {
      expect(out[k].dims, k).toEqual([3, 4]);
      expect(Array.from(out[k].data as Float32Array), k).toEqual(Array.from(data));
    }
  });

  const cases = {
    'reduceMean axes []': (g: GraphBuilder, a: ReturnType<GraphBuilder['input']>) => g.tanh(g.reduceMean(a, [], true)),
    'reduceSum axes []': (g: GraphBuilder, a: ReturnType<GraphBuilder['input']>) => g.exp(g.reduceSum(a, [])),
    'x - reduceMean(x, []) (zero, with zero gradient)': (g: GraphBuilder, a: ReturnType<GraphBuilder['input']>) =>
      g.add(g.sub(a, g.reduceMean(a, [], true)), g.mul(a, g.constant(0.5))),
  };
  for (const [name, build] of Object.entries(cases)) {
    it(`gradient: ${name}`, async () => {
      const { gradErr } = await checkGradients({ inputs: { a: [3, 4] }, build: (g, x) => build(g, x.a) });
      expect(gradErr.a).toBeLessThan(TOL);
    });
  }

  it('gradient: instanceNorm on [N, C] (no spatial axes: statistics per element, output = beta)', async () => {
    const { gradErr } = await checkGradients({
      inputs: { x: [4, 3], gamma: [3], beta: [3] },
      build: (g, x) => g.mul(g.instanceNorm(g.tanh(x.x), x.gamma, x.beta), g.constant(1.5)),
    });
    for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(TOL);
  });
});

describe('sequential dense -> instanceNorm -> dense trains with the right gradient', () => {
  it('whole-model gradient vs central differences of the loss; the output ignores the first layer', async () => {
    const data = tabular(10, 4, 3);
    const model = { type: 'sequential' as const, layers: [
      { type: 'dense', units: 5 }, { type: 'instanceNorm' }, { type: 'tanh' }, { type: 'dense', units: 2 },
    ] };
    const t = await Trainer.create({ model, optimizer: { type: 'sgd', lr: 0.1 }, batchSize: data.size, seed: 5, providers: ['cpu'] }, data);
    const base = t.getParameters();
    const { loss, gradient } = await t.lossAndGradient(data);
    expect(Number.isFinite(loss)).toBe(true);
    const rng = new Rng(3);
    const coords = [...gradient.keys()].sort((a, b) => Math.abs(gradient[b]) - Math.abs(gradient[a])).slice(0, 4);
    for (let k = 0; k < 6; k++) coords.push(rng.int(gradient.length));
    const eps = 1e-3;
    const lossAt = async (i: number, d: number): Promise<number> => {
      const v = base.slice(); v[i] += d; t.setParameters(v);
      return (await t.lossAndGradient(data)).loss;
    };
    for (const i of coords) {
      const fd = ((await lossAt(i, eps)) - (await lossAt(i, -eps))) / (2 * eps);
      const name = t.layout.entries.find((e) => i >= e.offset && i < e.offset + e.length)?.name;
      expect(Math.abs(fd - gradient[i]), `${name}[${i}]: analytic ${gradient[i]} vs fd ${fd}`)
        .toBeLessThanOrEqual(3e-2 * Math.max(Math.abs(fd), Math.abs(gradient[i])) + 2e-3);
    }
    // per-element statistics: the normalised value is 0, so the first dense layer gets exactly zero gradient
    const first = t.layout.entries.filter((e) => e.name.startsWith('l0.'));
    expect(first.length).toBeGreaterThan(0);
    for (const e of first) for (let i = e.offset; i < e.offset + e.length; i++) expect(gradient[i]).toBe(0);
    expect(Math.abs(gradient[coords[0]])).toBeGreaterThan(1e-3);
    await t.dispose();
  });
});

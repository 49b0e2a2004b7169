// GraphBuilder: static shape inference, clear errors, names, and models that load and run in onnxruntime-node.
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/engine/graph/index.ts';
import { gradients } from '../../src/engine/autodiff/index.ts';
import { CohortError } from '../../src/util/errors.ts';
import { run, session } from '../helpers/float64/ort.ts';

function cohortError(f: () => unknown): CohortError {
  try {
    f();
  } catch (e) {
    if (e instanceof CohortError) return e;
    throw e;
  }
  throw new Error('expected a CohortError');
}

describe('GraphBuilder shape inference', () => {
  it('infers shapes of broadcasting, linear algebra, reductions and layout ops', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [2, 3, 4]);
    expect(g.add(a, g.input('b', [3, 1])).shape).toEqual([2, 3, 4]);
    expect(g.matmul(a, g.input('m', [1, 4, 6])).shape).toEqual([2, 3, 6]);
    expect(g.gemm(g.input('p', [5, 3]), g.input('q', [7, 5]), null, { transA: true, transB: true }).shape).toEqual([3, 7]);
    expect(g.reduceSum(a, [1]).shape).toEqual([2, 4]);
    expect(g.reduceMean(a, [-1], true).shape).toEqual([2, 3, 1]);
    expect(g.reduceMean(a).shape).toEqual([]);
    expect(g.reshape(a, [6, -1]).shape).toEqual([6, 4]);
    expect(g.flatten(a).shape).toEqual([2, 12]);
    expect(g.transpose(a, [2, 0, 1]).shape).toEqual([4, 2, 3]);
    expect(g.slice(a, { starts: [1], ends: [100], axes: [2], steps: [2] }).shape).toEqual([2, 3, 2]);
    expect(g.concat([a, a], 1).shape).toEqual([2, 6, 4]);
    expect(g.split(a, [1, 3], 2).map((t) => t.shape)).toEqual([[2, 3, 1], [2, 3, 3]]);
    expect(g.constant(3).shape).toEqual([]);
  });

  it('throws SHAPE_MISMATCH naming the op, the node and both shapes', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [2, 3]);
    const e = cohortError(() => g.matmul(a, g.input('b', [4, 5])));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/^MatMul matmul_\d+: shapes \[2,3\] and \[4,5\]/);
    expect(e.hint).toBeTruthy();
    expect(cohortError(() => g.add(a, g.input('c', [4]))).message).toMatch(/Add .*\[2,3\] and \[4\] do not broadcast/);
    expect(cohortError(() => g.reshape(a, [5, -1])).code).toBe('SHAPE_MISMATCH');
    expect(cohortError(() => g.concat([a, g.input('d', [3, 3])], 1)).code).toBe('SHAPE_MISMATCH');
    expect(cohortError(() => g.transpose(a, [0, 0])).code).toBe('SHAPE_MISMATCH');
    expect(cohortError(() => g.softmax(a, 2)).message).toMatch(/axis 2 is out of range/);
  });

  it('rejects duplicate names, bad shapes and a non-scalar loss', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [2, 3]);
    expect(cohortError(() => g.input('a', [1])).code).toBe('DUPLICATE_NAME');
    expect(cohortError(() => g.initializer('a', new Float32Array(1), [1])).code).toBe('DUPLICATE_NAME');
    expect(cohortError(() => g.input('z', [0, 2])).code).toBe('BAD_SHAPE');
    expect(cohortError(() => g.initializer('w', new Float32Array(5), [2, 3])).code).toBe('SHAPE_MISMATCH');
    expect(cohortError(() => gradients(g, g.relu(a), [a])).code).toBe('BAD_LOSS');
  });
});

describe('gradients() errors', () => {
  it('names the op without a backward rule on the path to the loss', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [4]);
    const erf = g.emit1('Erf', [a], [4], 'float32');
    const e = cohortError(() => gradients(g, g.reduceSum(erf), [a]));
    expect(e.code).toBe('NO_GRADIENT');
    expect(e.message).toMatch(/Erf erf_\d+: no backward rule/);
    const b = g.input('b', [6]);
    expect(cohortError(() => gradients(g, g.reduceSum(g.slice(b, { starts: [0], ends: [6], steps: [2] })), [b])).code).toBe('NO_GRADIENT');
  });

});

describe('GraphBuilder models in onnxruntime-node', () => {
  it('runs a forward + backward graph with initializers, constants and named outputs', async () => {
    const g = new GraphBuilder('mlp');
    const x = g.input('x', [2, 3]);
    const w = g.input('w', [3, 2]);
    const b = g.initializer('b', Float32Array.from([0.5, -0.5]), [2]);
    const y = g.add(g.matmul(x, w), b);
    const loss = g.reduceSum(g.mul(y, g.constant(2)));
    const [dw] = gradients(g, loss, [w]);
    g.output(y, 'y');
    g.output(loss, 'loss');
    g.output(dw, 'dw');
    const s = await session(g);
    const out = await run(s, {
      x: { data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [2, 3] },
      w: { data: Float32Array.from([1, 0, 0, 1, 1, 1]), shape: [3, 2] },
    });
    expect([...out.y]).toEqual([4.5, 4.5, 10.5, 10.5]);
    expect(out.loss[0]).toBe(60);
    // dL/dw = x^T * 2 (ones): column sums of x times 2
    expect([...out.dw]).toEqual([10, 10, 14, 14, 18, 18]);
    await s.release();
  });

  it('returns zeros for a parameter the loss does not use', async () => {
    const g = new GraphBuilder();
    const a = g.input('a', [2]);
    const unused = g.input('u', [3]);
    const [da, du] = gradients(g, g.reduceSum(g.mul(a, a)), [a, unused]);
    g.output(da, 'da');
    g.output(du, 'du');
    const out = await run(await session(g), { a: { data: Float32Array.from([1, -2]), shape: [2] }, u: { data: new Float32Array(3), shape: [3] } });
    expect([...out.da]).toEqual([2, -4]);
    expect([...out.du]).toEqual([0, 0, 0]);
  });
});

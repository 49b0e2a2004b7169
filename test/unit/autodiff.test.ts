// Every backward rule of the dense / elementwise / layout ops against central finite differences of ORT's forward.
import { describe, expect, it } from 'vitest';
import { checkGradients, type OpCase } from '../helpers/float64/gradcheck.ts';

// Values kept away from kinks (relu, abs, max, clip) so finite differences are exact there.
const awayFromZero = (_: string, n: number, rng: { normal(): number }): Float32Array =>
  Float32Array.from({ length: n }, () => { const v = rng.normal(); return v + (v >= 0 ? 0.2 : -0.2); });
const positive = (_: string, n: number, rng: { next(): number }): Float32Array =>
  Float32Array.from({ length: n }, () => 0.5 + 1.5 * rng.next());

const TOL = 2e-3;

const cases: Record<string, OpCase> = {
  matmul: { inputs: { a: [3, 4], b: [4, 5] }, build: (g, x) => g.matmul(x.a, x.b) },
  'matmul batched with 2-D rhs': { inputs: { a: [2, 3, 4], b: [4, 2] }, build: (g, x) => g.matmul(x.a, x.b) },
  'matmul broadcast batch': { inputs: { a: [2, 3, 4], b: [1, 4, 2] }, build: (g, x) => g.matmul(x.a, x.b) },
  gemm: { inputs: { a: [3, 4], b: [4, 5], c: [5] }, build: (g, x) => g.gemm(x.a, x.b, x.c, { alpha: 0.7, beta: 1.3 }) },
  'gemm transA transB': {
    inputs: { a: [4, 3], b: [5, 4], c: [3, 1] }, build: (g, x) => g.gemm(x.a, x.b, x.c, { transA: true, transB: true, alpha: 2 }),
  },
  'gemm transB': { inputs: { a: [3, 4], b: [5, 4] }, build: (g, x) => g.gemm(x.a, x.b, null, { transB: true }) },
  'gemm transA': { inputs: { a: [4, 3], b: [4, 5] }, build: (g, x) => g.gemm(x.a, x.b, null, { transA: true }) },
  'add broadcast': { inputs: { a: [2, 3, 4], b: [3, 1] }, build: (g, x) => g.add(x.a, x.b) },
  'sub broadcast': { inputs: { a: [3, 1], b: [2, 3, 4] }, build: (g, x) => g.sub(x.a, x.b) },
  'mul broadcast': { inputs: { a: [2, 3, 4], b: [4] }, build: (g, x) => g.mul(x.a, x.b) },
  'div broadcast': { inputs: { a: [2, 3], b: [1, 3] }, build: (g, x) => g.div(x.a, x.b), init: positive },
  'mul scalar': { inputs: { a: [2, 3], b: [] }, build: (g, x) => g.mul(x.a, x.b) },
  max: { inputs: { a: [2, 5], b: [5] }, build: (g, x) => g.max(x.a, x.b), init: (k, n, r) => awayFromZero(k, n, r).map((v, i) => v * (k === 'a' ? 1 : 1.7) + i * 0.01) },
  min: { inputs: { a: [2, 5], b: [2, 5] }, build: (g, x) => g.min(x.a, x.b), init: (k, n, r) => awayFromZero(k, n, r).map((v) => (k === 'a' ? v : v * 0.5 + 0.3)) },
  neg: { inputs: { a: [2, 3] }, build: (g, x) => g.neg(x.a) },
  sqrt: { inputs: { a: [2, 3] }, build: (g, x) => g.sqrt(x.a), init: positive },
  'pow 2': { inputs: { a: [2, 3] }, build: (g, x) => g.pow(x.a, 2) },
  'pow 1.5': { inputs: { a: [2, 3] }, build: (g, x) => g.pow(x.a, 1.5), init: positive },
  exp: { inputs: { a: [2, 3] }, build: (g, x) => g.exp(x.a) },
  log: { inputs: { a: [2, 3] }, build: (g, x) => g.log(x.a), init: positive },
  abs: { inputs: { a: [2, 3] }, build: (g, x) => g.abs(x.a), init: awayFromZero },
  reciprocal: { inputs: { a: [2, 3] }, build: (g, x) => g.reciprocal(x.a), init: positive },
  relu: { inputs: { a: [3, 4] }, build: (g, x) => g.relu(x.a), init: awayFromZero },
  leakyRelu: { inputs: { a: [3, 4] }, build: (g, x) => g.leakyRelu(x.a, 0.1), init: awayFromZero },
  sigmoid: { inputs: { a: [3, 4] }, build: (g, x) => g.sigmoid(x.a) },
  tanh: { inputs: { a: [3, 4] }, build: (g, x) => g.tanh(x.a) },
  softplus: { inputs: { a: [3, 4] }, build: (g, x) => g.softplus(x.a) },
  clip: { inputs: { a: [3, 4] }, build: (g, x) => g.clip(x.a, -0.5, 0.7), init: (k, n, r) => awayFromZero(k, n, r).map((v) => (Math.abs(v - 0.7) < 0.05 ? v + 0.1 : v)) },
  where: {
    inputs: { a: [3, 4], b: [4] },
    build: (g, x) => g.where(g.greater(x.a, g.constant(0)), x.a, x.b), init: awayFromZero,
  },
  softmax: { inputs: { a: [3, 5] }, build: (g, x) => g.softmax(x.a, -1) },
  'softmax axis 0': { inputs: { a: [3, 5] }, build: (g, x) => g.softmax(x.a, 0) },
  logSoftmax: { inputs: { a: [3, 5] }, build: (g, x) => g.logSoftmax(x.a, 1) },
  reshape: { inputs: { a: [2, 3, 4] }, build: (g, x) => g.mul(g.reshape(x.a, [4, -1]), g.constant(2)) },
  flatten: { inputs: { a: [2, 3, 4] }, build: (g, x) => g.exp(g.flatten(x.a, 2)) },
  transpose: { inputs: { a: [2, 3, 4] }, build: (g, x) => g.exp(g.transpose(x.a, [1, 2, 0])) },
  concat: { inputs: { a: [2, 3], b: [2, 2] }, build: (g, x) => g.exp(g.concat([x.a, x.b], 1)) },
  split: {
    inputs: { a: [2, 6] },
    build: (g, x) => { const [p, , q] = g.split(x.a, [2, 1, 3], 1); return g.concat([g.exp(p), q], 1); },
  },
  slice: { inputs: { a: [3, 6] }, build: (g, x) => g.exp(g.slice(x.a, { starts: [1, -4], ends: [3, 5], axes: [0, 1] })) },
  pad: { inputs: { a: [2, 3] }, build: (g, x) => g.exp(g.pad(x.a, [1, 0, 0, 2])) },
  expand: { inputs: { a: [3, 1] }, build: (g, x) => g.expand(x.a, [2, 3, 4]) },
  reduceSum: { inputs: { a: [2, 3, 4] }, build: (g, x) => g.reduceSum(x.a, [0, 2]) },
  'reduceSum keepdims': { inputs: { a: [2, 3, 4] }, build: (g, x) => g.reduceSum(x.a, [1], true) },
  'reduceMean all': { inputs: { a: [2, 3, 4] }, build: (g, x) => g.reduceMean(g.mul(x.a, x.a)) },
  reduceMean: { inputs: { a: [2, 3, 4] }, build: (g, x) => g.reduceMean(x.a, [-1]) },
  reduceMax: { inputs: { a: [3, 4, 2] }, build: (g, x) => g.reduceMax(x.a, [1]) },
  'logsumexp with max stabiliser': {
    inputs: { a: [3, 5] },
    build: (g, x) => { const m = g.reduceMax(x.a, [1], true); return g.add(g.log(g.reduceSum(g.exp(g.sub(x.a, m)), [1], true)), m); },
  },
  'two reductions of one tensor (broadcast gradients summed)': {
    inputs: { a: [2, 3, 4] }, build: (g, x) => g.mul(g.reduceMean(x.a, [2], true), g.reduceSum(x.a, [2], true)),
  },
  'reduction and full use of one tensor': {
    inputs: { a: [2, 3, 4] }, build: (g, x) => g.sub(x.a, g.reduceMean(x.a, [1, 2], true)),
  },
  'reuse (sum of paths)': { inputs: { a: [3, 3] }, build: (g, x) => g.mul(g.tanh(x.a), g.matmul(x.a, x.a)) },
  'batchNorm (training)': {
    inputs: { x: [4, 3, 2, 2], gamma: [3], beta: [3], rm: [3], rv: [3] }, wrt: ['x', 'gamma', 'beta'],
    build: (g, x) => g.batchNorm(x.x, x.gamma, x.beta, x.rm, x.rv, { training: true }).y,
  },
  'batchNorm (eval)': {
    inputs: { x: [2, 3, 4], gamma: [3], beta: [3], rm: [3], rv: [3] }, wrt: ['x', 'gamma', 'beta', 'rm', 'rv'],
    build: (g, x) => g.batchNorm(x.x, x.gamma, x.beta, x.rm, g.abs(x.rv), { training: false }).y,
    init: (k, n, r) => (k === 'rv' ? positive(k, n, r) : awayFromZero(k, n, r)),
  },
  instanceNorm: {
    inputs: { x: [2, 3, 4, 3], gamma: [3], beta: [3] }, build: (g, x) => g.instanceNorm(x.x, x.gamma, x.beta),
  },
  groupNorm: {
    inputs: { x: [2, 4, 3, 3], gamma: [4], beta: [4] }, build: (g, x) => g.groupNorm(x.x, 2, x.gamma, x.beta),
  },
  'dropout (fixed seed: mask reused in backward)': {
    inputs: { a: [4, 6] }, build: (g, x) => g.dropout(g.tanh(x.a), 0.4, g.constant(1234, 'int64'), 1),
  },
  'mlp with softmax cross-entropy': {
    inputs: { x: [4, 3], w1: [3, 5], b1: [5], w2: [5, 2] },
    wrt: ['w1', 'b1', 'w2'],
    build: (g, x) => {
      const h = g.relu(g.gemm(x.x, x.w1, x.b1));
      return g.reduceMean(g.neg(g.logSoftmax(g.matmul(h, x.w2), 1)));
    },
  },
};

describe('backward rules vs central finite differences (ORT float32 forward)', () => {
  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      const { gradErr } = await checkGradients(c);
      for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(TOL);
    });
  }
});

describe('the gradient checker itself', () => {
  it('flags a wrong backward rule', async () => {
    const { RULES } = await import('../../src/engine/autodiff/index.ts');
    const table = RULES as Record<string, (typeof RULES)[string]>;
    const tanh = table.Tanh;
    table.Tanh = table.Sigmoid; // deliberately wrong derivative
    try {
      const { gradErr } = await checkGradients({ inputs: { a: [2, 3] }, build: (g, x) => g.tanh(x.a) });
      expect(gradErr.a).toBeGreaterThan(0.1);
    } finally {
      table.Tanh = tanh;
    }
  });
});

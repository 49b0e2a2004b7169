// Conv / ConvTranspose / pooling: ORT float32 forward vs a naive float64 reference, and ORT float32 analytic
// gradients vs central finite differences of that float64 reference. Covers 1D/2D/3D, strides, pads, dilations, groups.
import { describe, expect, it } from 'vitest';
import { checkGradients, type OpCase } from '../helpers/float64/gradcheck.ts';
import { im2colConfig } from '../../src/engine/autodiff/im2col.ts';
import { poolConfig } from '../../src/engine/autodiff/rules/pool.ts';
import { GraphBuilder } from '../../src/engine/graph/index.ts';
import { gradients } from '../../src/engine/autodiff/index.ts';
import { run, session } from '../helpers/float64/ort.ts';
import type { Rng } from '../../src/util/random.ts';
import { conv64, convTranspose64, globalAvgPool64, pool64, type Arr, type Geom, type PoolGeom64 } from '../helpers/float64/conv.ts';

const FWD_TOL = 1e-4;
const GRAD_TOL = 1e-3;

const arr = (x: Readonly<Record<string, Float64Array>>, k: string, shape: number[]): Arr => ({ data: x[k], shape });

function convCase(kind: 'conv' | 'convT', xs: number[], ws: number[], geo: Geom, bias = true): OpCase {
  const cout = kind === 'conv' ? ws[0] : ws[1] * (geo.group ?? 1);
  const inputs: Record<string, number[]> = { x: xs, w: ws, ...(bias ? { b: [cout] } : {}) };
  const opts = { strides: geo.strides, pads: geo.pads, dilations: geo.dilations, group: geo.group, outputPadding: geo.outputPadding };
  return {
    inputs,
    build: (g, t) => (kind === 'conv' ? g.conv(t.x, t.w, t.b, opts) : g.convTranspose(t.x, t.w, t.b, opts)),
    reference: (x) => (kind === 'conv' ? conv64 : convTranspose64)(arr(x, 'x', xs), arr(x, 'w', ws), bias ? x.b : null, geo).data,
  };
}

function poolCase(kind: 'max' | 'avg', xs: number[], geo: PoolGeom64): OpCase {
  return {
    inputs: { x: xs },
    build: (g, t) => (kind === 'max' ? g.maxPool(t.x, geo) : g.averagePool(t.x, geo)),
    reference: (x) => pool64(kind, arr(x, 'x', xs), geo).data,
  };
}

const cases: Record<string, OpCase> = {
  'conv1d stride 2, pads [1,2]': convCase('conv', [2, 3, 9], [4, 3, 3], { strides: [2], pads: [1, 2] }),
  'conv1d dilation 2': convCase('conv', [2, 2, 10], [3, 2, 3], { dilations: [2] }),
  'conv2d 3x3 pad 1': convCase('conv', [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }),
  'conv2d stride 2, asymmetric pads, dilation [1,2]': convCase('conv', [2, 2, 7, 8], [3, 2, 3, 2], { strides: [2, 2], pads: [1, 0, 0, 1], dilations: [1, 2] }),
  'conv2d stride 3 (rows never reached)': convCase('conv', [1, 2, 8, 7], [2, 2, 2, 2], { strides: [3, 3] }, false),
  'conv2d groups 2': convCase('conv', [1, 4, 5, 5], [6, 2, 3, 3], { pads: [1, 1, 1, 1], group: 2 }),
  'conv2d depthwise stride 2': convCase('conv', [2, 4, 5, 5], [4, 1, 3, 3], { strides: [2, 2], group: 4 }),
  'conv2d one input channel (image layer)': convCase('conv', [3, 1, 5, 5], [3, 1, 3, 3], { pads: [1, 1, 1, 1] }),
  'conv2d 1x1': convCase('conv', [2, 3, 4, 4], [5, 3, 1, 1], {}),
  'conv2d 1x1 pad 1 (pads wider than the kernel)': convCase('conv', [1, 2, 3, 3], [2, 2, 1, 1], { pads: [1, 1, 1, 1] }),
  'conv3d stride [2,1,1], pads': convCase('conv', [1, 2, 5, 4, 4], [3, 2, 3, 2, 2], { strides: [2, 1, 1], pads: [1, 0, 1, 1, 0, 0] }),
  'conv3d groups 2, dilation 2': convCase('conv', [2, 4, 5, 5, 5], [2, 2, 2, 2, 2], { group: 2, dilations: [2, 2, 2] }),
  'convTranspose1d stride 2, pads, output padding': convCase('convT', [2, 3, 5], [3, 2, 3], { strides: [2], pads: [1, 1], outputPadding: [1] }),
  'convTranspose2d k2 s2 (U-Net up)': convCase('convT', [2, 3, 3, 3], [3, 2, 2, 2], { strides: [2, 2] }),
  'convTranspose2d k3 s2 p1 op1 groups 2': convCase('convT', [1, 4, 3, 3], [4, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1], outputPadding: [1, 1], group: 2 }),
  'convTranspose2d dilation 2': convCase('convT', [1, 2, 4, 3], [2, 3, 2, 3], { dilations: [2, 2], pads: [0, 1, 1, 0] }),
  'convTranspose3d k2 s2, batch 2, anisotropic (Gemm patch path)': convCase('convT', [2, 3, 2, 1, 3], [3, 4, 2, 2, 2], { strides: [2, 2, 2] }),
  'convTranspose3d k2 s2': convCase('convT', [1, 2, 2, 3, 2], [2, 2, 2, 2, 2], { strides: [2, 2, 2] }),
  'maxPool1d k2': poolCase('max', [2, 2, 8], { kernel: [2] }),
  'maxPool2d k2 s2': poolCase('max', [2, 3, 6, 6], { kernel: [2, 2] }),
  'maxPool2d k3 s2 pad 1 (overlapping)': poolCase('max', [1, 2, 7, 6], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  'maxPool2d k2 on 7x5 (floor mode skips a row and a column)': poolCase('max', [2, 2, 7, 5], { kernel: [2, 2] }),
  'maxPool2d k3 s3 on 7x8': poolCase('max', [1, 2, 7, 8], { kernel: [3, 3] }),
  'maxPool1d k3 s2 pad 1 (Indices path)': poolCase('max', [2, 2, 9], { kernel: [3], strides: [2], pads: [1, 1] }),
  'maxPool3d k3 s2 pad 1 (Indices path)': poolCase('max', [1, 2, 5, 4, 5], { kernel: [3, 3, 3], strides: [2, 2, 2], pads: [1, 1, 1, 1, 1, 1] }),
  'maxPool3d k2': poolCase('max', [1, 2, 4, 4, 4], { kernel: [2, 2, 2] }),
  'avgPool1d k3 s2': poolCase('avg', [2, 2, 9], { kernel: [3], strides: [2] }),
  'avgPool2d k2': poolCase('avg', [2, 3, 6, 6], { kernel: [2, 2] }),
  'avgPool2d k2 on 5x7 (floor mode leftovers)': poolCase('avg', [1, 2, 5, 7], { kernel: [2, 2] }),
  'maxPool3d k2 on 5x4x5 (leftovers)': poolCase('max', [1, 2, 5, 4, 5], { kernel: [2, 2, 2] }),
  'avgPool2d k3 s2 pad 1, pads not counted': poolCase('avg', [1, 2, 7, 6], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  'avgPool2d k3 s2 pad 1, pads counted': poolCase('avg', [1, 2, 7, 6], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: true }),
  'avgPool3d k2': poolCase('avg', [1, 2, 4, 4, 4], { kernel: [2, 2, 2] }),
  'globalAveragePool 2d': {
    inputs: { x: [2, 3, 4, 5] }, build: (g, t) => g.globalAveragePool(t.x), reference: (x) => globalAvgPool64(arr(x, 'x', [2, 3, 4, 5])).data,
  },
  'globalAveragePool 3d': {
    inputs: { x: [1, 2, 3, 3, 2] }, build: (g, t) => g.globalAveragePool(t.x), reference: (x) => globalAvgPool64(arr(x, 'x', [1, 2, 3, 3, 2])).data,
  },
};

describe('conv and pool: ORT float32 vs float64 reference and finite differences', () => {
  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      const { forwardErr, gradErr } = await checkGradients(c);
      expect(forwardErr, 'forward').toBeLessThan(FWD_TOL);
      for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(GRAD_TOL);
    });
  }
});

describe('conv weight gradient with the first axis offsets moved to dY (shifted path)', () => {
  const extra: Record<string, OpCase> = {
    'conv3d stride 1, pads, dilation [2,1,1]': convCase('conv', [2, 3, 6, 4, 4], [2, 3, 3, 3, 2], { pads: [2, 1, 0, 1, 1, 1], dilations: [2, 1, 1] }),
    'conv2d stride [1,2], asymmetric pads': convCase('conv', [2, 4, 6, 7], [2, 4, 3, 3], { strides: [1, 2], pads: [0, 1, 2, 0] }),
    'convTranspose2d stride 1, dilation 2': convCase('convT', [1, 3, 4, 4], [3, 2, 2, 3], { dilations: [2, 2], pads: [0, 1, 0, 0] }),
  };
  for (const [name, c] of Object.entries({ ...extra, 'conv2d 3x3 pad 1': cases['conv2d 3x3 pad 1'] })) {
    it(name, async () => {
      const saved = im2colConfig.shift;
      im2colConfig.shift = 'always';
      const savedMax = im2colConfig.maxColsFloats;
      if (name.startsWith('conv3d')) im2colConfig.maxColsFloats = 500; // also cover the chunked shifted path
      try {
        const { forwardErr, gradErr } = await checkGradients(c);
        expect(forwardErr, 'forward').toBeLessThan(FWD_TOL);
        for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(GRAD_TOL);
      } finally {
        im2colConfig.shift = saved;
        im2colConfig.maxColsFloats = savedMax;
      }
    });
  }
});

describe('conv weight gradient built in chunks of kernel offsets (the large-3D path)', () => {
  for (const name of ['conv2d 3x3 pad 1', 'conv3d stride [2,1,1], pads', 'convTranspose2d k2 s2 (U-Net up)']) {
    it(name, async () => {
      const saved = im2colConfig.maxColsFloats;
      im2colConfig.maxColsFloats = 200; // forces one or two offsets per Gemm
      im2colConfig.shift = 'never';
      try {
        const { gradErr } = await checkGradients(cases[name]);
        for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(GRAD_TOL);
      } finally {
        im2colConfig.maxColsFloats = saved;
        im2colConfig.shift = 'auto';
      }
    });
  }
});

describe('pool spread by ConvTranspose (the alternative implementation)', () => {
  for (const name of ['maxPool2d k2 on 7x5 (floor mode skips a row and a column)', 'avgPool2d k2 on 5x7 (floor mode leftovers)', 'maxPool3d k2']) {
    it(name, async () => {
      poolConfig.spread = 'convTranspose';
      try {
        const { forwardErr, gradErr } = await checkGradients(cases[name]);
        expect(forwardErr, 'forward').toBeLessThan(FWD_TOL);
        for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(GRAD_TOL);
      } finally {
        poolConfig.spread = 'matmul';
      }
    });
  }
});

describe('relu -> maxPool: relu backward folded into the pool when the pool is its only reader', () => {
  const relu = (a: Arr): Arr => ({ data: a.data.map((v) => Math.max(v, 0)), shape: a.shape });
  const xs = [2, 2, 6, 6];
  const ws = [3, 2, 3, 3];
  const geo = { pads: [1, 1, 1, 1] };
  const convRelu = (x: Readonly<Record<string, Float64Array>>): Arr => relu(conv64(arr(x, 'x', xs), arr(x, 'w', ws), x.b, geo));
  // a negative bias leaves whole windows at 0 after relu, where the folded mask matters
  const init = (k: string, n: number, r: Rng): Float32Array => Float32Array.from({ length: n }, () => (k === 'b' ? -1.5 : r.normal()));
  const fused: OpCase = {
    inputs: { x: xs, w: ws, b: [3] },
    init,
    build: (g, t) => g.maxPool(g.relu(g.conv(t.x, t.w, t.b, geo)), { kernel: [2, 2] }),
    reference: (x) => pool64('max', convRelu(x), { kernel: [2, 2] }).data,
  };
  const shared: OpCase = {
    inputs: { x: xs, w: ws, b: [3] },
    init,
    build: (g, t) => {
      const r = g.relu(g.conv(t.x, t.w, t.b, geo));
      return g.concat([g.flatten(g.maxPool(r, { kernel: [2, 2] })), g.flatten(r)], 1);
    },
    reference: (x) => {
      const r = convRelu(x);
      const p = pool64('max', r, { kernel: [2, 2] });
      const out: number[] = [];
      for (let n = 0; n < 2; n++) out.push(...p.data.slice(n * 27, (n + 1) * 27), ...r.data.slice(n * 108, (n + 1) * 108));
      return Float64Array.from(out);
    },
  };
  const fusedPerChannel: OpCase = { ...fused, build: (g, t) => { g.poolsPerChannel = true; return fused.build(g, t); } };
  for (const [name, c] of Object.entries({ 'pool is the only reader (folded)': fused, 'relu output also read elsewhere (not folded)': shared,
    'pool on a per-channel view reads the relu through a Reshape (folded)': fusedPerChannel })) {
    it(name, async () => {
      const { forwardErr, gradErr } = await checkGradients(c);
      expect(forwardErr, 'forward').toBeLessThan(FWD_TOL);
      for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(GRAD_TOL);
    });
  }
});

describe('2D pools on per-channel views (GraphCore.poolsPerChannel, as in train graphs) and the unfolded spread', () => {
  const perChannel = (c: OpCase): OpCase => ({ ...c, build: (g, t) => { g.poolsPerChannel = true; return c.build(g, t); } });
  const names = ['maxPool2d k2 s2', 'maxPool2d k3 s2 pad 1 (overlapping)', 'maxPool2d k2 on 7x5 (floor mode skips a row and a column)',
    'avgPool2d k2', 'avgPool2d k2 on 5x7 (floor mode leftovers)', 'avgPool2d k3 s2 pad 1, pads not counted'];
  for (const name of names) {
    it(`${name}, per-channel view`, async () => {
      const { forwardErr, gradErr } = await checkGradients(perChannel(cases[name]));
      expect(forwardErr, 'forward').toBeLessThan(FWD_TOL);
      for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(GRAD_TOL);
    });
  }
  it('the per-channel view really pools [N*C, 1, H, W] (and a plain graph does not)', () => {
    for (const on of [true, false]) {
      const g = new GraphBuilder('p');
      g.poolsPerChannel = on;
      const y = g.maxPool(g.input('x', [2, 3, 4, 4]), { kernel: [2, 2] });
      expect(y.shape).toEqual([2, 3, 2, 2]);
      const pool = g.nodes.find((n) => n.op === 'MaxPool')!;
      expect(pool.inputs[0]!.shape).toEqual(on ? [6, 1, 4, 4] : [2, 3, 4, 4]);
    }
  });
  for (const name of ['maxPool2d k2 s2', 'maxPool3d k2', 'avgPool2d k2 on 5x7 (floor mode leftovers)', 'maxPool3d k2 on 5x4x5 (leftovers)']) {
    it(`${name}, spread with one axis per MatMul (foldRows off)`, async () => {
      poolConfig.foldRows = false;
      try {
        const { forwardErr, gradErr } = await checkGradients(cases[name]);
        expect(forwardErr, 'forward').toBeLessThan(FWD_TOL);
        for (const [k, e] of Object.entries(gradErr)) expect(e, `d/d${k}`).toBeLessThan(GRAD_TOL);
      } finally {
        poolConfig.foldRows = true;
      }
    });
  }
});

describe('max pool ties: every winner of a window gets an equal share of its gradient', () => {
  // windows with 1, 2, 3 and 4 equal maxima (finite differences cannot check ties: the max is not differentiable there)
  const reference = (x: Float32Array, r: Float32Array, [n, c, h, w]: number[], k: number): Float32Array => {
    const d = new Float32Array(x.length);
    const oh = Math.floor(h / k), ow = Math.floor(w / k);
    for (let p = 0; p < n * c; p++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      const cells: number[] = [];
      for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) cells.push(p * h * w + (i * k + a) * w + j * k + b);
      const m = Math.max(...cells.map((q) => x[q]));
      const win = cells.filter((q) => x[q] === m);
      for (const q of win) d[q] = r[p * oh * ow + i * ow + j] / win.length;
    }
    return d;
  };
  for (const [name, shape, perChannel, countByMatmul] of [
    ['2D, per-channel views, window sums by the spread matrix', [2, 3, 4, 6], true, true],
    ['2D, a leftover column (4x7), window sums by the spread matrix', [1, 2, 4, 7], true, true],
    ['2D, a leftover row and column (5x7): rows do not fold, AveragePool', [1, 2, 5, 7], true, true],
    ['2D, window sums by AveragePool', [2, 3, 4, 6], false, false],
  ] as const) {
    it(name, async () => {
      const saved = poolConfig.countByMatmul;
      poolConfig.countByMatmul = countByMatmul;
      try {
        const g = new GraphBuilder('ties');
        g.poolsPerChannel = perChannel;
        const x = g.input('x', shape);
        const y = g.maxPool(x, { kernel: [2, 2] });
        const r = g.input('r', y.shape);
        const [dx] = gradients(g, g.reduceSum(g.mul(y, r)), [x]);
        g.output(dx, 'dx');
        const size = (shape as readonly number[]).reduce((p, q) => p * q, 1);
        // values from {0, 1, 2}: many windows tie, with 2, 3 or 4 equal maxima
        const xs = Float32Array.from({ length: size }, (_, i) => [2, 1, 2, 0, 2, 2, 1, 1, 2, 2, 2, 2][i % 12]);
        const rs = Float32Array.from({ length: y.shape.reduce((p, q) => p * q, 1) }, (_, i) => 1 + (i % 5));
        const out = await run(await session(g), { x: { data: xs, shape }, r: { data: rs, shape: y.shape } });
        const want = reference(xs, rs, [...shape], 2);
        for (let i = 0; i < size; i++) expect(out.dx[i], `dx[${i}]`).toBeCloseTo(want[i], 5);
      } finally {
        poolConfig.countByMatmul = saved;
      }
    });
  }
});

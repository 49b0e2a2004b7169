// CPU sessions run convolutions whose weights are inputs on ORT's NCHWc kernels (src/engine/graph/nchwc.ts, applied in
// providers.ts). The lowered model must compute what the plain one computes (forward, input, weight and bias gradients; the
// plain graph's gradients are checked against float64 finite differences in autodiff-conv.test.ts), only qualifying Convs may be
// lowered, and the plain graph (WebGPU/CUDA sessions, exports) must stay free of contrib ops.
import * as ort from 'onnxruntime-node';
import onnx from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gradients } from '../../src/engine/autodiff/index.ts';
import { GraphBuilder, type Tensor } from '../../src/engine/graph/index.ts';
import { lowerConvsToNchwc, NCHWC_DOMAIN, nchwcConfig } from '../../src/engine/graph/nchwc.ts';
import { createSession, nchwcBlockSize } from '../../src/engine/providers.ts';
import { Trainer, releaseSessions } from '../../src/engine/index.ts';
import { Rng } from '../../src/util/random.ts';

const opts: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

function nchwcNodes(model: Uint8Array): number {
  const m = onnx.onnx.ModelProto.decode(model);
  const count = (g: onnx.onnx.IGraphProto | null | undefined): number =>
    (g?.node ?? []).reduce((s, n) => s + (n.domain === NCHWC_DOMAIN ? 1 : 0) + (n.attribute ?? []).reduce((t, a) => t + count(a.g), 0), 0);
  return count(m.graph);
}

interface ConvNet { model: Uint8Array; feeds: Record<string, ort.Tensor>; outputs: string[] }

/** y = conv(x, w, b) (then a second conv when c2 is given), loss = sum(y * r); outputs y and every gradient. */
function convNet(xs: number[], ws: number[], c2?: number, geo: { pads?: number[]; strides?: number[]; dilations?: number[]; group?: number } = {}): ConvNet {
  const rng = new Rng(3);
  const g = new GraphBuilder('nchwc_check');
  const x = g.input('x', xs);
  const w = g.input('w', ws);
  const b = g.input('b', [ws[0]]);
  let y = g.conv(x, w, b, geo);
  const wrt: Tensor[] = [x, w, b];
  if (c2) {
    const w2 = g.input('w2', [c2, ws[0], 3, 3]);
    y = g.conv(g.relu(y), w2, null, { pads: [1, 1, 1, 1] });
    wrt.push(w2);
  }
  const r = g.input('r', y.shape);
  const grads = gradients(g, g.reduceSum(g.mul(y, r)), wrt);
  g.output(y, 'y');
  grads.forEach((t, i) => g.output(t, `d_${wrt[i].name}`));
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of g.inputs) feeds[t.name] = new ort.Tensor('float32', Float32Array.from({ length: t.shape.reduce((p, q) => p * q, 1) }, () => rng.normal()), [...t.shape]);
  return { model: g.toModelProto(), feeds, outputs: ['y', ...wrt.map((t) => `d_${t.name}`)] };
}

async function runModel(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(model, opts);
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally { await s.release(); }
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-12));
}

let block = 0;
beforeAll(async () => { block = await nchwcBlockSize(); });
afterAll(async () => { await releaseSessions(); });

describe('NCHWc lowering of convolutions with weight inputs (CPU provider)', () => {
  it('probes a block size from ORT itself: 0 (no NCHWc kernels) or a power of two >= 4', () => {
    expect(block === 0 || (block >= 4 && (block & (block - 1)) === 0)).toBe(true);
  });

  const qualifying: [string, number[], number[], number | undefined, Parameters<typeof convNet>[3]][] = [
    ['3x3 pad 1, 16 -> 32 channels, then 32 -> 16 (forward and the input gradient lowered)', [2, 16, 6, 6], [32, 16, 3, 3], 16, { pads: [1, 1, 1, 1] }],
    ['stride 2, asymmetric pads', [2, 16, 7, 6], [16, 16, 3, 3], undefined, { pads: [1, 0, 0, 1], strides: [2, 2] }],
    ['dilation 2, 1x3 kernel', [1, 32, 6, 7], [16, 32, 1, 3], undefined, { dilations: [2, 2], pads: [0, 2, 0, 2] }],
    ['1x1 kernel with pads wider than the kernel', [2, 16, 4, 5], [16, 16, 1, 1], undefined, { pads: [1, 1, 1, 1] }],
    ['5x5 kernel, pad 2, 3 images', [3, 16, 7, 7], [32, 16, 5, 5], undefined, { pads: [2, 2, 2, 2] }],
  ];
  for (const [name, xs, ws, c2, geo] of qualifying) {
    it(`${name}: the lowered model computes what the plain one does`, async (ctx) => {
      if (!block) ctx.skip();
      if (xs[1] % block || ws[0] % block) ctx.skip(); // a block size above 32 (none today) would not lower these
      const net = convNet(xs, ws, c2, geo);
      const lowered = lowerConvsToNchwc(net.model, block);
      expect(lowered).not.toBeNull();
      expect(nchwcNodes(lowered!)).toBeGreaterThan(0);
      expect(nchwcNodes(net.model)).toBe(0);
      const [plain, fast] = [await runModel(net.model, net.feeds), await runModel(lowered!, net.feeds)];
      for (const k of net.outputs) expect(relErr(fast[k], plain[k]), k).toBeLessThan(1e-5);
    });
  }

  it('leaves convolutions that do not fit alone: one input channel, channels off the block, groups, 3D, constant weights', async (ctx) => {
    if (!block) ctx.skip();
    for (const [xs, ws, geo] of [
      [[2, 1, 6, 6], [block, 1, 3, 3], { pads: [1, 1, 1, 1] }],
      [[2, block + 4, 5, 5], [block, block + 4, 3, 3], {}],
      [[2, 2 * block, 5, 5], [2 * block, block, 3, 3], { group: 2 }],
      [[1, block, 4, 4, 4], [block, block, 3, 3, 3], {}],
    ] as const) {
      const g = new GraphBuilder('nchwc_skip');
      g.output(g.conv(g.input('x', xs), g.input('w', ws), null, geo), 'y');
      expect(lowerConvsToNchwc(g.toModelProto(), block)).toBeNull();
    }
    const g = new GraphBuilder('nchwc_const');
    const w = g.initializer('w', new Float32Array(block * block * 9), [block, block, 3, 3]);
    g.output(g.conv(g.input('x', [1, block, 5, 5]), w, null, { pads: [1, 1, 1, 1] }), 'y');
    expect(lowerConvsToNchwc(g.toModelProto(), block)).toBeNull(); // ORT's own NCHWc transformer handles constant weights
  });

  it('the CPU session gets the lowered model; the graph itself (what WebGPU, CUDA and exports see) has no contrib ops', async (ctx) => {
    if (!block) ctx.skip();
    const net = convNet([2, 16, 6, 6], [32, 16, 3, 3], 16, { pads: [1, 1, 1, 1] });
    const plain = await runModel(net.model, net.feeds);
    const s = await createSession(net.model, ['cpu'], 1, 'error');
    try {
      const out = await s.session.run(net.feeds);
      for (const k of net.outputs) expect(relErr(out[k].data as Float32Array, plain[k]), k).toBeLessThan(1e-5);
    } finally { await s.session.release(); }
    expect(nchwcNodes(net.model)).toBe(0);
  });

  it('a cnn2d Trainer on CPU trains the same with and without the lowering (single steps and a fused Loop)', async () => {
    const rng = new Rng(5);
    const n = 32;
    const data = { size: n, inputs: { image: { shape: [1, 12, 12], data: Float32Array.from({ length: n * 144 }, () => rng.normal()) } },
      targets: { label: { shape: [], data: Float32Array.from({ length: n }, () => rng.int(3)) } } };
    const losses = async (on: boolean, fused: number, momentum: number): Promise<number[]> => {
      nchwcConfig.convs = on;
      try {
        const t = await Trainer.create({ model: { type: 'cnn2d', channels: [16, 32], classes: 3 }, optimizer: { type: 'sgd', lr: 0.05, momentum },
          batchSize: 8, seed: 1, threads: 1, providers: ['cpu'], fusedSteps: fused }, data);
        const out: number[] = [];
        for (let e = 0; e < 3; e++) out.push((await t.trainEpoch(data)).loss);
        await t.dispose();
        return out;
      } finally { nchwcConfig.convs = true; }
    };
    // distinct momenta (equal in float32) keep the session cache from sharing one session between the two variants
    const plain = await losses(false, 1, 0.9);
    for (const [fused, momentum] of [[1, 0.9 + 1e-9], [2, 0.9 + 2e-9]] as const) {
      const fast = await losses(true, fused, momentum);
      fast.forEach((l, i) => expect(Math.abs(l - plain[i]) / plain[i]).toBeLessThan(1e-4));
    }
  }, 60_000);
});

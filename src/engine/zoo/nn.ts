/**
 * Layer helpers for the model zoo: each creates its parameters through a ParamScope (so the same code builds the
 * train graph, where weights are graph inputs, and the exported model, where they are initializers) and emits
 * primitive GraphBuilder ops. Instance / group normalisation is composed here from primitives (affine scale and shift,
 * no running statistics: train and eval graphs compute the same function). Batch normalisation uses the graph layer's
 * batchNorm: batch statistics in training, whose running averages are buffers (ParamScope.buffer / update), and the
 * running statistics in evaluation and in the exported model.
 */
import type { GraphBuilder, Tensor } from '../graph/index.ts';
import type { ForwardMode, ParamScope } from '../params.ts';
import { CohortError } from '../../util/errors.ts';

export type Act = 'relu' | 'leakyRelu' | 'tanh' | 'sigmoid' | 'none';
export type Norm = 'none' | 'instance' | 'group' | 'batch';

export function activate(g: GraphBuilder, x: Tensor, act: Act): Tensor {
  switch (act) {
    case 'relu': return g.relu(x);
    case 'leakyRelu': return g.leakyRelu(x, 0.01);
    case 'tanh': return g.tanh(x);
    case 'sigmoid': return g.sigmoid(x);
    case 'none': return x;
  }
}

/** Fully connected: x [B, in] -> [B, units]. He init for hidden layers, Xavier for output layers; bias false: no bias. */
export function dense(g: GraphBuilder, s: ParamScope, name: string, x: Tensor, units: number, output = false, bias = true): Tensor {
  if (x.shape.length !== 2) x = g.flatten(x, 1);
  const fin = x.shape[1];
  const w = s.param(`${name}.w`, [fin, units], output ? 'xavier' : 'he', fin, units);
  if (!bias) return g.gemm(x, w);
  const b = s.param(`${name}.b`, [units], 'zeros');
  return g.gemm(x, w, b);
}

/**
 * One value per sample x [B, 1] -> [B, units], z_k = x + init + b_k: a learnable offset per unit (b zeros at start, so the
 * offsets start at the constant `init`). After a bias-free dense layer with one unit it is the proportional-hazards head of a
 * discrete-time survival model (one shared linear predictor, one baseline logit per interval: survival-discrete.ts).
 */
export function offsets(g: GraphBuilder, s: ParamScope, name: string, x: Tensor, units: number, init = 0): Tensor {
  if (x.shape.length !== 2 || x.shape[1] !== 1) {
    throw new CohortError('SHAPE_MISMATCH', `offsets layer '${name}': input has per-sample shape [${x.shape.slice(1).join(',')}], expected [1] (one value per sample)`,
      'put a dense layer with units 1 (e.g. {"type": "dense", "units": 1, "bias": false}) right before the offsets layer');
  }
  const b = s.param(`${name}.b`, [units], 'zeros');
  return g.add(x, init === 0 ? b : g.add(b, g.constant(init)));
}

/** N-d convolution, 'same' padding for odd kernels by default. */
export function conv(g: GraphBuilder, s: ParamScope, name: string, x: Tensor, out: number,
  o: { kernel: number; stride?: number; padding?: number; output?: boolean }): Tensor {
  const nd = x.shape.length - 2;
  const cin = x.shape[1];
  const k = o.kernel;
  const fanIn = cin * k ** nd;
  const w = s.param(`${name}.w`, [out, cin, ...new Array<number>(nd).fill(k)], o.output ? 'xavier' : 'he', fanIn, out * k ** nd);
  const b = s.param(`${name}.b`, [out], 'zeros');
  return g.conv(x, w, b, { strides: o.stride ?? 1, pads: o.padding ?? Math.floor(k / 2) });
}

/** 2x up-sampling by a transposed convolution with kernel 2, stride 2. */
export function upConv(g: GraphBuilder, s: ParamScope, name: string, x: Tensor, out: number): Tensor {
  const nd = x.shape.length - 2;
  const cin = x.shape[1];
  const w = s.param(`${name}.w`, [cin, out, ...new Array<number>(nd).fill(2)], 'he', cin * 2 ** nd, out * 2 ** nd);
  const b = s.param(`${name}.b`, [out], 'zeros');
  return g.convTranspose(x, w, b, { strides: 2 });
}

/** Normalisation after a conv: batch (running statistics as buffers), instance or group (groups = channels: instance). */
export function norm(g: GraphBuilder, s: ParamScope, name: string, x: Tensor, kind: Norm, groups = 4, mode?: ForwardMode): Tensor {
  if (kind === 'none') return x;
  const [B, C] = x.shape;
  if (kind === 'batch') {
    const gamma = s.param(`${name}.gamma`, [C], 'ones');
    const beta = s.param(`${name}.beta`, [C], 'zeros');
    const rm = s.buffer(`${name}.running_mean`, [C], 'zeros');
    const rv = s.buffer(`${name}.running_var`, [C], 'ones');
    const r = g.batchNorm(x, gamma, beta, rm, rv, { training: mode?.training ?? false });
    if (r.runningMean && r.runningVar) { s.update(`${name}.running_mean`, r.runningMean); s.update(`${name}.running_var`, r.runningVar); }
    return r.y;
  }
  const gamma = s.param(`${name}.gamma`, [C], 'ones');
  const beta = s.param(`${name}.beta`, [C], 'zeros');
  if (kind === 'instance') return g.instanceNorm(x, gamma, beta, 1e-5);
  const G = Math.min(groups, C);
  if (C % G !== 0) {
    throw new CohortError('BAD_MODEL_SPEC', `${name}: ${C} channels cannot be split into ${G} groups`, 'choose a group count that divides the channel count');
  }
  return g.groupNorm(x, G, gamma, beta, 1e-5);
}

/** Seeded inverted dropout in training (a fresh seed per step; `salt` tells layers apart), identity in evaluation. */
export function drop(g: GraphBuilder, x: Tensor, ratio: number, mode: ForwardMode, salt: number): Tensor {
  if (ratio === 0 || !mode.training) return x;
  return g.dropout(x, ratio, mode.seed(), salt);
}

export function pool(g: GraphBuilder, x: Tensor, kind: 'max' | 'avg', size: number): Tensor {
  for (const d of x.shape.slice(2)) {
    if (d < size) {
      throw new CohortError('SHAPE_MISMATCH', `pooling by ${size} of a feature map of shape [${x.shape.join(',')}] leaves nothing`,
        'use fewer pooling layers or larger inputs');
    }
  }
  return kind === 'max' ? g.maxPool(x, { kernel: size }) : g.averagePool(x, { kernel: size });
}

/** conv -> norm -> activation, twice (the U-Net block). */
export function doubleConv(g: GraphBuilder, s: ParamScope, name: string, x: Tensor, out: number, nrm: Norm, groups: number,
  mode: ForwardMode): Tensor {
  let h = conv(g, s, `${name}.c1`, x, out, { kernel: 3 });
  h = g.relu(norm(g, s, `${name}.n1`, h, nrm, groups, mode));
  h = conv(g, s, `${name}.c2`, h, out, { kernel: 3 });
  return g.relu(norm(g, s, `${name}.n2`, h, nrm, groups, mode));
}

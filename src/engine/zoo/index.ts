/**
 * The model zoo: builds a model from a declarative spec (../spec.ts) and the per-sample input shapes of the data.
 *   mlp                 dense layers on a feature vector
 *   cnn2d / cnn3d       [conv -> norm -> relu -> pool] per channel count, global average pool, dense head
 *   unet2d / unet3d     encoder-decoder with skip connections (double conv blocks, max pool down, transposed conv up)
 *   multitask-unet      a U-Net whose bottleneck also feeds one binary logit per marker (e.g. IDH, 1p/19q, MGMT, grade)
 *   multimodal          CNN image features concatenated with MLP features of tabular (clinical) inputs, dense head
 *   sequential          an explicit list of layers (incl. `offsets`: [B, 1] -> [B, K] plus one learnable offset per unit,
 *                       the proportional-hazards head of a discrete-time survival model)
 * A Model is a forward function over a ParamScope; the same function builds train, eval and export graphs.
 */
import { CohortError } from '../../util/errors.ts';
import { GraphBuilder, type Tensor } from '../graph/index.ts';
import { EVAL_MODE, ParamScope, type ForwardMode } from '../params.ts';
import { parseLayers, type LayerSpec, type ResolvedModelSpec } from '../spec.ts';
import { activate, conv, dense, doubleConv, drop, norm, offsets, pool, upConv, type Norm } from './nn.ts';

export type ModelKind = 'classify' | 'segment' | 'multitask';

export interface ModelInfo {
  readonly kind: ModelKind;
  /** Output channels: classes (or 1 for a single logit / binary mask). */
  readonly classes: number;
  /** Per-sample shape of the primary output (logits [classes] or seg logits [classes, ...spatial]). */
  readonly outputShape: readonly number[];
  readonly markers: readonly string[];
  /** SampleSet input names the model reads, with their per-sample shapes. */
  readonly inputs: Readonly<Record<string, readonly number[]>>;
}

export interface ModelOutputs { logits?: Tensor; seg?: Tensor; markers?: Tensor }

export interface Model {
  readonly info: ModelInfo;
  forward(g: GraphBuilder, s: ParamScope, x: Readonly<Record<string, Tensor>>, mode: ForwardMode): ModelOutputs;
}

type Shapes = Readonly<Record<string, readonly number[]>>;

export function buildModel(spec: ResolvedModelSpec, shapes: Shapes): Model {
  switch (spec.type) {
    case 'mlp': return mlp(spec, shapes);
    case 'cnn2d': case 'cnn3d': return cnn(spec, shapes);
    case 'unet2d': case 'unet3d': return unet(spec, shapes, spec.type === 'unet2d' ? 2 : 3);
    case 'multitask-unet': return unet(spec, shapes, spec.dims);
    case 'multimodal': return multimodal(spec, shapes);
    case 'sequential': return sequential(spec, shapes);
  }
}

function pickInput(name: string | undefined, shapes: Shapes, model: string): [string, readonly number[]] {
  const names = Object.keys(shapes);
  const n = name ?? (names.length === 1 ? names[0] : undefined);
  if (n === undefined) {
    throw new CohortError('BAD_MODEL_SPEC', `${model}: the data has several inputs (${names.join(', ')}) and the spec names none`,
      'set "input" in the model spec to the input the model reads');
  }
  const shape = shapes[n];
  if (!shape) {
    throw new CohortError('MISSING_INPUT', `${model}: the data has no input '${n}' (it has: ${names.join(', ') || 'none'})`,
      'name the input in the model spec as the data set names it');
  }
  return [n, shape];
}

function expectRank(model: string, input: string, shape: readonly number[], rank: number, what: string): void {
  if (shape.length !== rank) {
    throw new CohortError('SHAPE_MISMATCH', `${model}: input '${input}' has per-sample shape [${shape.join(',')}], expected ${what}`,
      'check that the model type fits the data (e.g. unet2d for [C,H,W] images, mlp for feature vectors)');
  }
}

function mlp(spec: Extract<ResolvedModelSpec, { type: 'mlp' }>, shapes: Shapes): Model {
  const [name, shape] = pickInput(spec.input, shapes, 'mlp');
  expectRank('mlp', name, shape, 1, '[features]');
  return {
    info: { kind: 'classify', classes: spec.classes, outputShape: [spec.classes], markers: [], inputs: { [name]: shape } },
    forward: (g, s, x, mode) => {
      let h = x[name];
      spec.hidden.forEach((u, i) => { h = drop(g, activate(g, dense(g, s, `fc${i}`, h, u), spec.activation), spec.dropout, mode, i); });
      return { logits: dense(g, s, 'out', h, spec.classes, true) };
    },
  };
}

function cnnFeatures(g: GraphBuilder, s: ParamScope, prefix: string, x: Tensor, channels: readonly number[], kernel: number,
  nrm: Norm, kind: 'max' | 'avg', mode: ForwardMode): Tensor {
  let h = x;
  channels.forEach((c, i) => {
    h = norm(g, s, `${prefix}norm${i}`, conv(g, s, `${prefix}conv${i}`, h, c, { kernel }), nrm, 4, mode);
    // relu(maxpool(h)) = maxpool(relu(h)) (relu is monotone): pooling first runs relu and its backward on 1/4 of the values
    h = kind === 'max' ? g.relu(pool(g, h, kind, 2)) : pool(g, g.relu(h), kind, 2);
  });
  return g.flatten(g.globalAveragePool(h), 1);
}

function cnn(spec: Extract<ResolvedModelSpec, { type: 'cnn2d' | 'cnn3d' }>, shapes: Shapes): Model {
  const nd = spec.type === 'cnn2d' ? 2 : 3;
  const [name, shape] = pickInput(spec.input, shapes, spec.type);
  expectRank(spec.type, name, shape, nd + 1, nd === 2 ? '[C,H,W]' : '[C,D,H,W]');
  return {
    info: { kind: 'classify', classes: spec.classes, outputShape: [spec.classes], markers: [], inputs: { [name]: shape } },
    forward: (g, s, x, mode) => {
      let h = drop(g, cnnFeatures(g, s, '', x[name], spec.channels, spec.kernel, spec.norm, spec.pool, mode), spec.dropout, mode, 0);
      spec.hidden.forEach((u, i) => { h = drop(g, g.relu(dense(g, s, `fc${i}`, h, u)), spec.dropout, mode, i + 1); });
      return { logits: dense(g, s, 'out', h, spec.classes, true) };
    },
  };
}

function unet(spec: Extract<ResolvedModelSpec, { type: 'unet2d' | 'unet3d' | 'multitask-unet' }>, shapes: Shapes, nd: number): Model {
  const [name, shape] = pickInput(spec.input, shapes, spec.type);
  expectRank(spec.type, name, shape, nd + 1, nd === 2 ? '[C,H,W]' : '[C,D,H,W]');
  const f = 2 ** spec.depth;
  if (shape.slice(1).some((d) => d % f !== 0)) {
    throw new CohortError('SHAPE_MISMATCH', `${spec.type}: spatial size [${shape.slice(1).join(',')}] is not divisible by 2^depth = ${f}`,
      'crop or pad the images, or lower the depth');
  }
  const markers = spec.type === 'multitask-unet' ? spec.markers : [];
  return {
    info: { kind: markers.length ? 'multitask' : 'segment', classes: spec.classes, outputShape: [spec.classes, ...shape.slice(1)],
      markers, inputs: { [name]: shape } },
    forward: (g, s, x, mode) => {
      const skips: Tensor[] = [];
      let h = x[name];
      for (let l = 0; l < spec.depth; l++) {
        h = doubleConv(g, s, `enc${l}`, h, spec.base * 2 ** l, spec.norm, spec.groups, mode);
        skips.push(h);
        h = pool(g, h, 'max', 2);
      }
      h = doubleConv(g, s, 'mid', h, spec.base * 2 ** spec.depth, spec.norm, spec.groups, mode);
      const bottleneck = h;
      for (let l = spec.depth - 1; l >= 0; l--) {
        const c = spec.base * 2 ** l;
        h = g.concat([skips[l], upConv(g, s, `up${l}`, h, c)], 1);
        h = doubleConv(g, s, `dec${l}`, h, c, spec.norm, spec.groups, mode);
      }
      const seg = conv(g, s, 'head', h, spec.classes, { kernel: 1, output: true });
      if (spec.type !== 'multitask-unet') return { seg };
      let m = g.flatten(g.globalAveragePool(bottleneck), 1);
      m = g.relu(dense(g, s, 'markers.fc', m, spec.markerHidden));
      return { seg, markers: dense(g, s, 'markers.out', m, markers.length, true) };
    },
  };
}

function multimodal(spec: Extract<ResolvedModelSpec, { type: 'multimodal' }>, shapes: Shapes): Model {
  const [img, ishape] = pickInput(spec.image.input, shapes, 'multimodal');
  const [tab, tshape] = pickInput(spec.tabular.input, shapes, 'multimodal');
  expectRank('multimodal', img, ishape, spec.image.dims + 1, spec.image.dims === 2 ? '[C,H,W]' : '[C,D,H,W]');
  expectRank('multimodal', tab, tshape, 1, '[features]');
  return {
    info: { kind: 'classify', classes: spec.classes, outputShape: [spec.classes], markers: [], inputs: { [img]: ishape, [tab]: tshape } },
    forward: (g, s, x, mode) => {
      const fi = cnnFeatures(g, s, 'img.', x[img], spec.image.channels, spec.image.kernel, 'none', 'max', mode);
      let ft = x[tab];
      spec.tabular.hidden.forEach((u, i) => { ft = g.relu(dense(g, s, `tab.fc${i}`, ft, u)); });
      let h = g.concat([fi, ft], 1);
      spec.hidden.forEach((u, i) => { h = g.relu(dense(g, s, `fc${i}`, h, u)); });
      return { logits: dense(g, s, 'out', h, spec.classes, true) };
    },
  };
}

function applyLayer(g: GraphBuilder, s: ParamScope, l: LayerSpec, i: number, h: Tensor, last: boolean, mode: ForwardMode): Tensor {
  switch (l.type) {
    case 'dense': return dense(g, s, `l${i}.dense`, h, l.units, last, l.bias);
    case 'offsets': return offsets(g, s, `l${i}.offsets`, h, l.units, l.init);
    case 'conv': return conv(g, s, `l${i}.conv`, h, l.channels, { kernel: l.kernel, stride: l.stride, padding: l.padding, output: last });
    case 'relu': return g.relu(h);
    case 'leakyRelu': return g.leakyRelu(h, l.alpha);
    case 'tanh': return g.tanh(h);
    case 'sigmoid': return g.sigmoid(h);
    case 'maxPool': return pool(g, h, 'max', l.size);
    case 'avgPool': return pool(g, h, 'avg', l.size);
    case 'globalAvgPool': return g.globalAveragePool(h);
    case 'flatten': return g.flatten(h, 1);
    case 'instanceNorm': return norm(g, s, `l${i}.norm`, h, 'instance');
    case 'groupNorm': return norm(g, s, `l${i}.norm`, h, 'group', l.groups);
    case 'batchNorm': return norm(g, s, `l${i}.norm`, h, 'batch', 4, mode);
    case 'dropout': return drop(g, h, l.ratio, mode, i);
  }
}

function sequential(spec: Extract<ResolvedModelSpec, { type: 'sequential' }>, shapes: Shapes): Model {
  const [name, shape] = pickInput(spec.input, shapes, 'sequential');
  const layers = parseLayers(spec.layers);
  const forward = (g: GraphBuilder, s: ParamScope, x: Readonly<Record<string, Tensor>>, mode: ForwardMode): Tensor =>
    layers.reduce((h, l, i) => applyLayer(g, s, l, i, h, i === layers.length - 1, mode), x[name]);
  return {
    get info(): ModelInfo {
      // The output shape follows from the layers: probe them once on a throwaway graph (batch 1).
      const out = probeOutput(forward, name, shape);
      const classes = out[1];
      return out.length === 2
        ? { kind: 'classify', classes, outputShape: [classes], markers: [], inputs: { [name]: shape } }
        : { kind: 'segment', classes, outputShape: out.slice(1), markers: [], inputs: { [name]: shape } };
    },
    forward: (g, s, x, mode) => {
      const y = forward(g, s, x, mode);
      return y.shape.length === 2 ? { logits: y } : { seg: y };
    },
  };
}

/** Output shape of a layer stack, found by building it once on a throwaway graph with batch 1. */
function probeOutput(f: (g: GraphBuilder, s: ParamScope, x: Record<string, Tensor>, mode: ForwardMode) => Tensor, name: string,
  shape: readonly number[]): number[] {
  const g = new GraphBuilder('probe');
  const s = new ParamScope((d) => g.input(`p_${d.name}`, d.shape), (d) => g.input(`b_${d.name}`, d.shape));
  return [...f(g, s, { [name]: g.input(`in_${name}`, [1, ...shape]) }, EVAL_MODE).shape];
}

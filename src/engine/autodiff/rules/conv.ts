/**
 * Backward rules for Conv and ConvTranspose (each is the other's adjoint in the data argument):
 *   Conv:          dX = ConvTranspose(dY, W) (stride 1: Conv with the flipped kernel); dW by im2col; db = sum dY.
 *   ConvTranspose: dX = Conv(dY, W) with the same geometry;                      dW by im2col; db = sum dY.
 */
import type { GraphBuilder } from '../../graph/builder.ts';
import type { ConvGeom } from '../../graph/ops/conv.ts';
import type { Tensor } from '../../graph/types.ts';
import type { Rule } from '../types.ts';
import { inp } from '../util.ts';
import { im2colConfig, weightAndOuterSum, weightGradient } from '../im2col.ts';

function biasGrad(g: Parameters<Rule>[0]['g'], dy: Parameters<Rule>[0]['dy'][number]) {
  const axes = dy!.shape.map((_, i) => i).filter((i) => i !== 1);
  return g.reduceSum(dy!, axes);
}

/** W [O, C/G, k...] -> W' [C, O/G, k...] with every spatial axis reversed (tiny: weights only). */
function flippedTransposedWeight(g: GraphBuilder, w: Tensor, group: number): Tensor {
  const [o, cg, ...k] = w.shape;
  const sp = k.map((_, i) => i + 3);
  const t = g.transpose(g.reshape(w, [group, o / group, cg, ...k]), [0, 2, 1, ...sp]);
  const flipped = g.emit1('Slice', [t, g.constant(k.map(() => -1), 'int64'), g.constant(k.map((kk) => -kk - 1), 'int64'),
    g.constant(sp, 'int64'), g.constant(k.map(() => -1), 'int64')], t.shape, t.dtype);
  return g.reshape(flipped, [cg * group, o / group, ...k]);
}

/**
 * dX of a convolution. Stride 1: a plain Conv of dY with the flipped, transposed kernel (ORT's Conv runs 2-3x
 * faster than its ConvTranspose: 1.3 ms vs 3.1 ms for [64,32,16,16] -> [64,16,16,16], 3x3). Otherwise
 * ConvTranspose, with output_padding = the input rows the forward windows never reached (always < stride).
 */
function inputGradient(g: GraphBuilder, x: Tensor, w: Tensor, d: Tensor, geo: ConvGeom): Tensor {
  const nd = geo.kernel.length;
  const span = geo.kernel.map((k, i) => geo.dilations[i] * (k - 1));
  const pads = [...span.map((s, i) => s - geo.pads[i]), ...span.map((s, i) => s - geo.pads[i + nd])];
  if (geo.strides.every((s) => s === 1) && pads.every((p) => p >= 0)) {
    return g.conv(d, flippedTransposedWeight(g, w, geo.group), null, { pads, dilations: geo.dilations, group: geo.group });
  }
  const outputPadding = x.shape.slice(2).map((xs, i) => xs - ((d.shape[i + 2] - 1) * geo.strides[i]
    + span[i] + 1 - geo.pads[i] - geo.pads[i + nd]));
  const opts = { strides: geo.strides, pads: geo.pads, dilations: geo.dilations, group: geo.group };
  return g.convTranspose(d, w, null, { ...opts, outputPadding });
}

const conv: Rule = ({ g, node, dy: [dy], needs }) => {
  const [x, w] = [inp(node, 0), inp(node, 1)];
  const geo = (node.meta as { geo: ConvGeom }).geo;
  const nd = geo.kernel.length;
  const d = dy!;
  const wantBias = Boolean(node.inputs[2] && needs[2]);
  // the bias gradient comes from the channels-first dY the weight gradient's Gemm reads (contiguous reduction)
  const [dw, db] = needs[1] ? weightAndOuterSum(g, d, x, { ...geo, padBegin: geo.pads.slice(0, nd) }, wantBias && im2colConfig.biasFromOuter) : [null, null];
  return [
    needs[0] ? inputGradient(g, x, w, d, geo) : null,
    dw,
    wantBias ? db ?? biasGrad(g, d) : null,
  ];
};

const convTranspose: Rule = ({ g, node, dy: [dy], needs }) => {
  const [x, w] = [inp(node, 0), inp(node, 1)];
  const geo = (node.meta as { geo: ConvGeom }).geo;
  const nd = geo.kernel.length;
  const d = dy!;
  const opts = { strides: geo.strides, pads: geo.pads, dilations: geo.dilations, group: geo.group };
  return [
    needs[0] ? g.conv(d, w, null, opts) : null,
    needs[1] ? weightGradient(g, x, d, { ...geo, padBegin: geo.pads.slice(0, nd) }) : null,
    node.inputs[2] && needs[2] ? biasGrad(g, d) : null,
  ];
};

export const convRules: Record<string, Rule> = { Conv: conv, ConvTranspose: convTranspose };

/**
 * Backward rules for Conv and ConvTranspose (each is the other's adjoint in the data argument):
 *   Conv:          dX = ConvTranspose(dY, W) with output_padding restoring X's size; dW by im2col; db = sum dY.
 *   ConvTranspose: dX = Conv(dY, W) with the same geometry;                      dW by im2col; db = sum dY.
 */
import type { ConvGeom } from '../../graph/ops/conv.ts';
import type { Rule } from '../types.ts';
import { inp } from '../util.ts';
import { weightGradient } from '../im2col.ts';

function biasGrad(g: Parameters<Rule>[0]['g'], dy: Parameters<Rule>[0]['dy'][number]) {
  const axes = dy!.shape.map((_, i) => i).filter((i) => i !== 1);
  return g.reduceSum(dy!, axes);
}

const conv: Rule = ({ g, node, dy: [dy], needs }) => {
  const [x, w] = [inp(node, 0), inp(node, 1)];
  const geo = (node.meta as { geo: ConvGeom }).geo;
  const nd = geo.kernel.length;
  const d = dy!;
  // output_padding = the input rows the forward windows never reached (always < stride)
  const outputPadding = x.shape.slice(2).map((xs, i) => xs - ((d.shape[i + 2] - 1) * geo.strides[i]
    + geo.dilations[i] * (geo.kernel[i] - 1) + 1 - geo.pads[i] - geo.pads[i + nd]));
  const opts = { strides: geo.strides, pads: geo.pads, dilations: geo.dilations, group: geo.group };
  return [
    needs[0] ? g.convTranspose(d, w, null, { ...opts, outputPadding }) : null,
    needs[1] ? weightGradient(g, d, x, { ...geo, padBegin: geo.pads.slice(0, nd) }) : null,
    node.inputs[2] && needs[2] ? biasGrad(g, d) : null,
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

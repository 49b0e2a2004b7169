/**
 * Normalisation layers. batchNorm is composed from primitives (autodiff goes through the parts); instance and group
 * normalisation run ONNX InstanceNormalization (ORT's fused kernel; backward rule in autodiff/rules/norm.ts, ~2x fewer
 * full-size passes than the composed chain: U-Net 2D train step +4-5%).
 *   batchNorm:    training normalises with batch statistics over (N, spatial) and also returns the updated running
 *                 statistics (PyTorch convention: new = (1 - momentum) * old + momentum * batch, variance unbiased);
 *                 eval normalises with the running statistics.
 *   instanceNorm: statistics per (sample, channel) over the spatial axes.
 *   groupNorm:    statistics per (sample, group of channels) over the group's channels and spatial axes.
 */
import type { GraphBuilder } from '../builder.ts';
import { fmt, shapeError, sizeOf } from '../shape.ts';
import type { Tensor } from '../types.ts';

export interface BatchNormOpts { training: boolean; momentum?: number; eps?: number }
export interface BatchNormResult { y: Tensor; runningMean?: Tensor; runningVar?: Tensor }

/** [C] -> [1, C, 1, ...] so it broadcasts over an N,C,spatial tensor. */
function perChannel(g: GraphBuilder, v: Tensor, rank: number): Tensor {
  return g.reshape(v, [1, v.shape[0], ...new Array<number>(rank - 2).fill(1)]);
}

function checkChannels(op: string, g: GraphBuilder, x: Tensor, ...vs: Tensor[]): void {
  const c = x.shape[1];
  if (x.shape.length < 2 || vs.some((v) => v.shape.length !== 1 || v.shape[0] !== c)) {
    throw shapeError(op, g.peekName(op), `input ${fmt(x.shape)} needs per-channel vectors of shape [${c}], got ${vs.map((v) => fmt(v.shape)).join(' ')}`);
  }
}

/** (x - mean) / sqrt(var + eps) over `axes` (biased variance), plus the statistics. */
function standardise(g: GraphBuilder, x: Tensor, axes: number[], eps: number): { xhat: Tensor; mean: Tensor; variance: Tensor } {
  const mean = g.reduceMean(x, axes, true);
  const xc = g.sub(x, mean);
  const variance = g.reduceMean(g.mul(xc, xc), axes, true);
  const inv = g.reciprocal(g.sqrt(g.add(variance, g.constant(eps))));
  return { xhat: g.mul(xc, inv), mean, variance };
}

function affine(g: GraphBuilder, xhat: Tensor, gamma: Tensor, beta: Tensor): Tensor {
  const r = xhat.shape.length;
  return g.add(g.mul(xhat, perChannel(g, gamma, r)), perChannel(g, beta, r));
}

export function batchNorm(g: GraphBuilder, x: Tensor, gamma: Tensor, beta: Tensor, runMean: Tensor, runVar: Tensor,
  o: BatchNormOpts): BatchNormResult {
  checkChannels('BatchNorm', g, x, gamma, beta, runMean, runVar);
  const eps = o.eps ?? 1e-5;
  const r = x.shape.length;
  if (!o.training) {
    const scale = g.mul(perChannel(g, gamma, r), g.reciprocal(g.sqrt(g.add(perChannel(g, runVar, r), g.constant(eps)))));
    return { y: g.add(g.mul(g.sub(x, perChannel(g, runMean, r)), scale), perChannel(g, beta, r)) };
  }
  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  const { xhat, mean, variance } = standardise(g, x, axes, eps);
  const m = o.momentum ?? 0.1;
  const count = sizeOf(axes.map((a) => x.shape[a]));
  const unbiased = count > 1 ? count / (count - 1) : 1;
  const flat = (t: Tensor): Tensor => g.reshape(t, [x.shape[1]]);
  const blend = (old: Tensor, batch: Tensor): Tensor => g.add(g.mul(old, g.constant(1 - m)), g.mul(batch, g.constant(m)));
  return {
    y: affine(g, xhat, gamma, beta),
    runningMean: blend(runMean, flat(mean)),
    runningVar: blend(runVar, g.mul(flat(variance), g.constant(unbiased))),
  };
}

/** ONNX InstanceNormalization: per (sample, channel) statistics over the spatial axes, then gamma, beta. */
function fusedInstanceNorm(g: GraphBuilder, x: Tensor, gamma: Tensor, beta: Tensor, eps: number): Tensor {
  return g.emit1('InstanceNormalization', [x, gamma, beta], x.shape, 'float32', { epsilon: { f: eps } });
}

export function instanceNorm(g: GraphBuilder, x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  checkChannels('InstanceNorm', g, x, gamma, beta);
  if (x.shape.length >= 3) return fusedInstanceNorm(g, x, gamma, beta, eps);
  const axes = x.shape.map((_, i) => i).filter((i) => i >= 2);
  return affine(g, standardise(g, x, axes, eps).xhat, gamma, beta);
}

export function groupNorm(g: GraphBuilder, x: Tensor, groups: number, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  checkChannels('GroupNorm', g, x, gamma, beta);
  const [n, c] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw shapeError('GroupNorm', g.peekName('GroupNorm'), `${c} channels of ${fmt(x.shape)} do not split into ${groups} groups`);
  }
  // groups as the channels of an instance norm with unit scale and zero shift (constants: no gradient), then the affine
  const grouped = g.reshape(x, [n, groups, sizeOf(x.shape) / (n * groups)]);
  const unit = (v: number): Tensor => g.constant(new Array<number>(groups).fill(v));
  const xhat = g.reshape(fusedInstanceNorm(g, grouped, unit(1), unit(0), eps), x.shape);
  return affine(g, xhat, gamma, beta);
}

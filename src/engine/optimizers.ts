/**
 * Optimizers as graph stages: given parameters, their gradients and optimizer state (all graph tensors), emit the
 * updated parameters and state. Per-step scalars are graph inputs computed on the host (`stepHyper`), so learning-rate
 * schedules (linear warm-up, cosine decay) and Adam's bias correction cost nothing in the graph:
 *   lr      the scheduled learning rate
 *   alpha   Adam: lr * sqrt(1 - b2^t) / (1 - b1^t)          eps_hat  Adam: eps * sqrt(1 - b2^t)
 * so that p -= alpha * m / (sqrt(v) + eps_hat) equals PyTorch's p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
 * Order, as in PyTorch + FedProx: g = dL/dp + mu (p - anchor); clip by global norm; then L2 weight decay (sgd, adam)
 * or decoupled decay p *= 1 - lr*wd (adamw); then the update.
 */
import type { GraphBuilder, Tensor } from './graph/index.ts';
import type { ResolvedOptimizerSpec } from './spec.ts';

export type HyperName = 'lr' | 'alpha' | 'eps_hat';

/** Names of per-parameter state slots the optimizer keeps (each shaped like its parameter). */
export function stateSlots(opt: ResolvedOptimizerSpec): string[] {
  if (opt.type === 'sgd') return opt.momentum > 0 ? ['mom'] : [];
  return ['m', 'v'];
}

export function hyperNames(opt: ResolvedOptimizerSpec): HyperName[] {
  return opt.type === 'sgd' ? ['lr'] : ['lr', 'alpha', 'eps_hat'];
}

/** Scheduled learning rate for 0-based step index `step` (warm-up, then optional cosine decay). */
export function scheduledLr(opt: ResolvedOptimizerSpec, step: number, baseLr = opt.lr): number {
  const s = opt.schedule;
  if (!s) return baseLr;
  if (step < s.warmupSteps) return (baseLr * (step + 1)) / s.warmupSteps;
  if (!s.cosineSteps) return baseLr;
  const t = Math.min(1, (step - s.warmupSteps) / s.cosineSteps);
  return s.minLr + 0.5 * (baseLr - s.minLr) * (1 + Math.cos(Math.PI * t));
}

/** Host-side scalars for 0-based step index `step`. */
export function stepHyper(opt: ResolvedOptimizerSpec, step: number, baseLr?: number): Record<HyperName, number> {
  const lr = scheduledLr(opt, step, baseLr);
  if (opt.type === 'sgd') return { lr, alpha: 0, eps_hat: 0 };
  const t = step + 1;
  const bc1 = 1 - Math.pow(opt.beta1, t);
  const bc2 = 1 - Math.pow(opt.beta2, t);
  return { lr, alpha: (lr * Math.sqrt(bc2)) / bc1, eps_hat: opt.eps * Math.sqrt(bc2) };
}

export interface OptimizerInputs {
  params: readonly Tensor[];
  grads: readonly Tensor[];
  /** state[slot][i] for parameter i */
  state: Readonly<Record<string, readonly Tensor[]>>;
  hyper: Readonly<Record<HyperName, Tensor>>;
  /** FedProx: anchors and mu (the proximal term's gradient mu (p - anchor) is added to each gradient). */
  prox?: { anchors: readonly Tensor[]; mu: number };
}

export interface OptimizerOutputs { params: Tensor[]; state: Record<string, Tensor[]> }

export function applyOptimizer(g: GraphBuilder, opt: ResolvedOptimizerSpec, io: OptimizerInputs): OptimizerOutputs {
  let grads = [...io.grads];
  const { params, prox } = io;
  if (prox && prox.mu > 0) {
    const mu = g.constant(prox.mu);
    grads = grads.map((gr, i) => g.add(gr, g.mul(mu, g.sub(params[i], prox.anchors[i]))));
  }
  if (opt.clipNorm !== undefined) grads = clipGlobalNorm(g, grads, opt.clipNorm);
  const wd = opt.weightDecay;
  if (wd > 0 && opt.type !== 'adamw') grads = grads.map((gr, i) => g.add(gr, g.mul(g.constant(wd), params[i])));
  return opt.type === 'sgd' ? sgd(g, opt, params, grads, io) : adam(g, opt, params, grads, io);
}

function clipGlobalNorm(g: GraphBuilder, grads: readonly Tensor[], maxNorm: number): Tensor[] {
  const sq = grads.map((gr) => g.reduceSum(g.mul(gr, gr)));
  const total = sq.length === 1 ? sq[0] : sq.slice(1).reduce((a, b) => g.add(a, b), sq[0]);
  const c = g.constant(maxNorm);
  const scale = g.div(c, g.max(g.sqrt(total), c)); // = min(1, c / norm)
  return grads.map((gr) => g.mul(gr, scale));
}

function sgd(g: GraphBuilder, opt: Extract<ResolvedOptimizerSpec, { type: 'sgd' }>, params: readonly Tensor[],
  grads: readonly Tensor[], io: OptimizerInputs): OptimizerOutputs {
  const lr = io.hyper.lr;
  if (opt.momentum === 0) return { params: params.map((p, i) => g.sub(p, g.mul(lr, grads[i]))), state: {} };
  const mu = g.constant(opt.momentum);
  const mom = params.map((_, i) => g.add(g.mul(mu, io.state.mom[i]), grads[i]));
  const dir = opt.nesterov ? grads.map((gr, i) => g.add(gr, g.mul(mu, mom[i]))) : mom;
  return { params: params.map((p, i) => g.sub(p, g.mul(lr, dir[i]))), state: { mom } };
}

function adam(g: GraphBuilder, opt: Extract<ResolvedOptimizerSpec, { type: 'adam' | 'adamw' }>, params: readonly Tensor[],
  grads: readonly Tensor[], io: OptimizerInputs): OptimizerOutputs {
  const b1 = g.constant(opt.beta1), nb1 = g.constant(1 - opt.beta1);
  const b2 = g.constant(opt.beta2), nb2 = g.constant(1 - opt.beta2);
  const m = grads.map((gr, i) => g.add(g.mul(b1, io.state.m[i]), g.mul(nb1, gr)));
  const v = grads.map((gr, i) => g.add(g.mul(b2, io.state.v[i]), g.mul(nb2, g.mul(gr, gr))));
  let base = [...params];
  if (opt.type === 'adamw' && opt.weightDecay > 0) {
    const keep = g.sub(g.constant(1), g.mul(io.hyper.lr, g.constant(opt.weightDecay)));
    base = base.map((p) => g.mul(p, keep));
  }
  const next = base.map((p, i) => g.sub(p, g.mul(io.hyper.alpha, g.div(m[i], g.add(g.sqrt(v[i]), io.hyper.eps_hat)))));
  return { params: next, state: { m, v } };
}

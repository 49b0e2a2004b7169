/**
 * DP-SGD (Abadi et al. 2016) as an ONNX train-step graph: per-sample gradients, each clipped to L2 norm `clip`, summed,
 * plus Gaussian noise N(0, (sigma clip)^2) per coordinate, divided by the expected batch size; then the usual optimizer
 * stage (post-processing: any optimizer keeps the guarantee).
 *
 * Per-sample gradients: the batch-expanded graph. The minibatch input [S, ...] is sliced into S rows; the model's forward
 * pass and loss are built once per row (batch 1, the same parameter tensors), and the autodiff is run per row's loss, so
 * the graph holds S forward + backward copies. It works for every model the autodiff supports (MLP, CNN, ...) with no
 * per-layer rule; its cost is S batch-1 matrix products instead of one batch-S product (for the MLP on WDBC about 3-6x
 * slower per sample than the plain step, measured in docs/privacy.md) and graph size linear in S. Models with BatchNorm
 * (samples mix through batch statistics) and non-decomposable losses (Cox: each patient's term depends on the risk set)
 * have no per-sample gradient and are refused.
 *
 * Sampling: Poisson, as the accountant assumes (src/privacy/accountant.ts): each training sample joins a step with
 * probability q = batchSize / n independently. The graph has S slots (S = batchSize + 4 sqrt(batchSize) + 1; a larger
 * draw, rarer than 1 in 10^4, gets its own graph); unused slots carry a 0 in `dp_mask`. Noise is drawn on the host and fed
 * as `dpn_<param>` already scaled to sigma * clip, so sigma changes no graph; `h_dp_scale` = 1 / (q n).
 */
import { gradients } from './autodiff/index.ts';
import { GraphBuilder, type Tensor } from './graph/index.ts';
import { N, type Plan } from './graphs.ts';
import { applyOptimizer, hyperNames, stateSlots, type HyperName } from './optimizers.ts';
import { ParamScope, type ForwardMode, type ParamDecl } from './params.ts';
import { CohortError } from '../util/errors.ts';

export const DP = {
  mask: 'dp_mask',
  scale: 'h_dp_scale',
  noise: (n: string) => `dpn_${n}`,
};

/** Slots of the DP step graph for an expected batch size (about 4 standard deviations of the Poisson draw above it). */
export function dpSlots(batchSize: number, n: number): number {
  return Math.min(n, batchSize + Math.ceil(4 * Math.sqrt(batchSize)) + 1);
}

/** Why a plan cannot run DP-SGD, or null. */
export function dpUnsupported(plan: Plan, buffers: number): string | null {
  if (buffers > 0) return 'the model has BatchNorm (batch statistics mix samples, so a sample has no gradient of its own): use norm "instance", "group" or "none"';
  if (plan.loss.spec.type === 'cox') return 'the Cox partial likelihood is not a sum of per-patient terms (each term depends on the risk set), so per-sample clipping bounds nothing; use loss "discrete-hazard" (fixed intervals, one term per patient) for DP survival';
  if (plan.loss.spec.type === 'cross-entropy' && plan.loss.spec.classWeights) return 'class weights normalise the loss over the batch; per-sample gradients would ignore them';
  return null;
}

/** One DP-SGD step over S slots: inputs as trainStep plus dp_mask [S], h_dp_scale [], dpn_<param>; outputs as trainStep. */
export function dpTrainStep(plan: Plan, S: number, clip: number): Uint8Array {
  const g = new GraphBuilder('dp_train_step');
  const hyper = Object.fromEntries(hyperNames(plan.opt).map((h) => [h, g.input(N.hyper(h), [])])) as Record<HyperName, Tensor>;
  const data = Object.fromEntries(Object.entries(plan.model.info.inputs).map(([n, s]) => [n, g.input(N.input(n), [S, ...s])]));
  const targets = Object.fromEntries(plan.loss.targets.map((t) => [t.name, g.input(N.target(t.name), [S, ...t.shape])]));
  const mask = g.input(DP.mask, [S]);
  const scale = g.input(DP.scale, []);
  const params = new Map<string, Tensor>();
  const order: ParamDecl[] = [];
  const param = (d: ParamDecl): Tensor => {
    let t = params.get(d.name);
    if (!t) { t = g.input(N.param(d.name), d.shape); params.set(d.name, t); order.push(d); }
    return t;
  };
  let seed: Tensor | undefined;
  const mode: ForwardMode = { training: true, seed: () => (seed ??= g.input(N.seed, [], 'int64')) };
  const row = (t: Tensor, b: number): Tensor => g.slice(t, { starts: [b], ends: [b + 1], axes: [0] });
  const c = g.constant(clip);
  let sum: Tensor[] | null = null;
  let lossSum: Tensor | null = null;
  for (let b = 0; b < S; b++) {
    const scope = new ParamScope(param);
    const out = plan.model.forward(g, scope, Object.fromEntries(Object.entries(data).map(([k, t]) => [k, row(t, b)])), mode);
    const loss = plan.loss.build(g, out, Object.fromEntries(Object.entries(targets).map(([k, t]) => [k, row(t, b)])));
    const ts = scope.decls.map((d) => params.get(d.name) as Tensor);
    const grads = gradients(g, loss, ts);
    const sq = grads.map((gr) => g.reduceSum(g.mul(gr, gr)));
    const norm = g.sqrt(sq.length === 1 ? sq[0] : sq.slice(1).reduce((a, x) => g.add(a, x), sq[0]));
    const m = g.reshape(row(mask, b), []);
    const factor = g.mul(m, g.div(c, g.max(norm, c))); // mask_b * min(1, clip / ||g_b||)
    const clipped = grads.map((gr) => g.mul(gr, factor));
    sum = sum ? sum.map((s, i) => g.add(s, clipped[i])) : clipped;
    const ml = g.mul(m, loss);
    lossSum = lossSum ? g.add(lossSum, ml) : ml;
  }
  const decls = order;
  const tensors = decls.map((d) => params.get(d.name) as Tensor);
  const noisy = (sum as Tensor[]).map((s, i) => g.mul(g.add(s, g.input(DP.noise(decls[i].name), decls[i].shape)), scale));
  const state = stateInputs(g, plan, decls);
  const prox = plan.proximalMu > 0 ? { anchors: decls.map((d) => g.input(N.anchor(d.name), d.shape)), mu: plan.proximalMu } : undefined;
  const next = applyOptimizer(g, plan.opt, { params: tensors, grads: noisy, state, hyper, prox });
  const loss = g.div(lossSum as Tensor, g.max(g.reduceSum(mask), g.constant(1)));
  g.output(loss, 'loss');
  decls.forEach((d, i) => g.output(next.params[i], N.newParam(d.name)));
  for (const [slot, ts] of Object.entries(next.state)) decls.forEach((d, i) => g.output(ts[i], N.newState(slot, d.name)));
  return g.toModelProto();
}

function stateInputs(g: GraphBuilder, plan: Plan, decls: readonly ParamDecl[]): Record<string, Tensor[]> {
  return Object.fromEntries(stateSlots(plan.opt).map((slot) => [slot, decls.map((d) => g.input(N.state(slot, d.name), d.shape))]));
}

export function dpError(why: string): CohortError {
  return new CohortError('DP_UNSUPPORTED', `differential privacy (DP-SGD) cannot train this model: ${why}`,
    'change the model or loss as said, or drop privacy.dp from the manifest');
}

/**
 * Graph variants compiled from one model + loss + optimizer ("plan"):
 *   trainStep(B)      one SGD/Adam step: inputs params, optimizer state, per-step scalars, a minibatch; outputs new params,
 *                     new state, loss
 *   trainLoop(B, K)   K fused steps in one ONNX Loop; batch k is Gather(data[K,B,...], k), per-step scalars are [K]
 *                     vectors; outputs the final params/state and the K losses (saves K-1 session round trips)
 *   eval(B)           forward + loss + probabilities (params are inputs, so one session serves every peer)
 *   gradient(B)       loss and dL/dparams at the given params (gradient checks, gradient-based averaging)
 *   exportModel(v)    forward + probabilities, weights baked in as initializers: the portable model.onnx
 * Graph tensor names: in_<input>, t_<target>, p_<param>, s_<slot>_<param>, h_<hyper>, a_<param> (FedProx anchor),
 * b_<buffer> (BatchNorm running statistics), seed (dropout, int64); outputs loss | losses, np_<param>, ns_<slot>_<param>,
 * nb_<buffer>, prob, markers_prob. Train graphs run the model in training mode (batch statistics, dropout), eval and
 * export graphs in evaluation mode (running statistics, no dropout).
 */
import onnx from 'onnx-proto';
import { gradients } from './autodiff/index.ts';
import { GraphBuilder, graphProto, tensorProto, DEFAULT_OPSET, type Tensor } from './graph/index.ts';
import type { ConstTensor, NodeRecord } from './graph/types.ts';
import { isSurvivalLoss, type LossStage } from './losses.ts';
import { cumulativeHazard } from './survival-discrete.ts';
import { applyOptimizer, hyperNames, stateSlots, type HyperName } from './optimizers.ts';
import { EVAL_MODE, ParamScope, type BufferDecl, type ForwardMode, type ParamDecl } from './params.ts';
import type { ResolvedOptimizerSpec } from './spec.ts';
import { CohortError } from '../util/errors.ts';
import type { Model, ModelOutputs } from './zoo/index.ts';

export interface Plan {
  readonly model: Model;
  readonly loss: LossStage;
  readonly opt: ResolvedOptimizerSpec;
  readonly proximalMu: number;
}

export const N = {
  input: (n: string) => `in_${n}`,
  target: (n: string) => `t_${n}`,
  param: (n: string) => `p_${n}`,
  state: (slot: string, n: string) => `s_${slot}_${n}`,
  hyper: (n: string) => `h_${n}`,
  anchor: (n: string) => `a_${n}`,
  buffer: (n: string) => `b_${n}`,
  newParam: (n: string) => `np_${n}`,
  newState: (slot: string, n: string) => `ns_${slot}_${n}`,
  newBuffer: (n: string) => `nb_${n}`,
  /** int64 dropout seed: a scalar in step graphs, [K] in the fused loop; present only when the model uses dropout. */
  seed: 'seed',
};

/** The parameter and buffer declarations of a model, in order (builds the forward graph once, batch 1). */
export function declareParams(model: Model): { params: ParamDecl[]; buffers: BufferDecl[] } {
  const g = new GraphBuilder('declare');
  const s = new ParamScope((d) => g.input(N.param(d.name), d.shape), (d) => g.input(N.buffer(d.name), d.shape));
  model.forward(g, s, dataInputs(g, model, 1), EVAL_MODE);
  return { params: s.decls, buffers: s.buffers };
}

function dataInputs(g: GraphBuilder, model: Model, B: number): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(model.info.inputs).map(([n, shape]) => [n, g.input(N.input(n), [B, ...shape])]));
}

function targetInputs(g: GraphBuilder, loss: LossStage, B: number): Record<string, Tensor> {
  return Object.fromEntries(loss.targets.map((t) => [t.name, g.input(N.target(t.name), [B, ...t.shape])]));
}

/** Training mode whose seed is made (as a graph input or a gathered loop value) only when a dropout layer asks. */
function trainingMode(makeSeed: () => Tensor): ForwardMode & { used(): boolean } {
  let seed: Tensor | undefined;
  return { training: true, seed: () => (seed ??= makeSeed()), used: () => seed !== undefined };
}

interface StepIO {
  data: Record<string, Tensor>;
  targets: Record<string, Tensor>;
  /** Tensor for each parameter / buffer, given its declaration (graph input or loop-carried value). */
  param: (d: ParamDecl) => Tensor;
  buffer: (d: BufferDecl) => Tensor;
  state: (slot: string, d: ParamDecl, i: number) => Tensor;
  hyper: Record<HyperName, Tensor>;
  anchor: (d: ParamDecl) => Tensor;
  mode: ForwardMode;
}

interface StepOut { loss: Tensor; params: Tensor[]; state: Record<string, Tensor[]>; buffers: Tensor[]; decls: ParamDecl[]; bufferDecls: BufferDecl[] }

/** Forward, loss, backward and optimizer update of one step, appended to g. */
function stepNodes(g: GraphBuilder, plan: Plan, io: StepIO): StepOut {
  const tensors: Tensor[] = [];
  const bufIn: Tensor[] = [];
  const scope = new ParamScope((d) => { const t = io.param(d); tensors.push(t); return t; },
    (d) => { const t = io.buffer(d); bufIn.push(t); return t; });
  const out = plan.model.forward(g, scope, io.data, io.mode);
  const loss = plan.loss.build(g, out, io.targets);
  const decls = scope.decls;
  const grads = gradients(g, loss, tensors);
  const slots = stateSlots(plan.opt);
  const state = Object.fromEntries(slots.map((slot) => [slot, decls.map((d, i) => io.state(slot, d, i))]));
  const prox = plan.proximalMu > 0 ? { anchors: decls.map(io.anchor), mu: plan.proximalMu } : undefined;
  const next = applyOptimizer(g, plan.opt, { params: tensors, grads, state, hyper: io.hyper, prox });
  const buffers = scope.buffers.map((d, i) => scope.updates.get(d.name) ?? bufIn[i]);
  return { loss, params: next.params, state: next.state, buffers, decls, bufferDecls: scope.buffers };
}

export function trainStep(plan: Plan, B: number): Uint8Array {
  const g = new GraphBuilder('train_step');
  g.poolsPerChannel = true; // weights are inputs: no NCHWc convs to chain with (GraphCore.poolsPerChannel)
  const hyper = Object.fromEntries(hyperNames(plan.opt).map((h) => [h, g.input(N.hyper(h), [])])) as Record<HyperName, Tensor>;
  const r = stepNodes(g, plan, {
    data: dataInputs(g, plan.model, B),
    targets: targetInputs(g, plan.loss, B),
    param: (d) => g.input(N.param(d.name), d.shape),
    buffer: (d) => g.input(N.buffer(d.name), d.shape),
    state: (slot, d) => g.input(N.state(slot, d.name), d.shape),
    hyper,
    anchor: (d) => g.input(N.anchor(d.name), d.shape),
    mode: trainingMode(() => g.input(N.seed, [], 'int64')),
  });
  g.output(r.loss, 'loss');
  r.decls.forEach((d, i) => g.output(r.params[i], N.newParam(d.name)));
  for (const [slot, ts] of Object.entries(r.state)) r.decls.forEach((d, i) => g.output(ts[i], N.newState(slot, d.name)));
  r.bufferDecls.forEach((d, i) => g.output(g.identity(r.buffers[i]), N.newBuffer(d.name)));
  return g.toModelProto();
}

/** A reference to a tensor of the enclosing graph, used inside a Loop body (ONNX outer-scope name). */
function outer(name: string, shape: readonly number[], dtype: Tensor['dtype'] = 'float32'): Tensor {
  return { name, shape, dtype };
}

export function trainLoop(plan: Plan, B: number, K: number, decls: readonly ParamDecl[], bufferDecls: readonly BufferDecl[]): Uint8Array {
  const body = new GraphBuilder('train_loop_body');
  body.poolsPerChannel = true; // weights are inputs: no NCHWc convs to chain with (GraphCore.poolsPerChannel)
  const iter = body.input('iter', [], 'int64');
  const cond = body.input('cond_in', [], 'bool');
  const gather = (name: string, shape: readonly number[], dtype: Tensor['dtype'] = 'float32'): Tensor =>
    body.emit1('Gather', [outer(name, [K, ...shape], dtype), iter], shape, dtype, { axis: { i: 0 } });
  const slots = stateSlots(plan.opt);
  // Loop-carried values, declared in carried order: params, each state slot's tensors, buffers.
  const carriedP = decls.map((d) => body.input(`bp_${d.name}`, d.shape));
  const carriedS = slots.map((slot) => decls.map((d) => body.input(`bs_${slot}_${d.name}`, d.shape)));
  const carriedB = bufferDecls.map((d) => body.input(`bb_${d.name}`, d.shape));
  const info = plan.model.info;
  const mode = trainingMode(() => gather(N.seed, [], 'int64'));
  const r = stepNodes(body, plan, {
    data: Object.fromEntries(Object.entries(info.inputs).map(([n, s]) => [n, gather(N.input(n), [B, ...s])])),
    targets: Object.fromEntries(plan.loss.targets.map((t) => [t.name, gather(N.target(t.name), [B, ...t.shape])])),
    param: (d) => carriedP[decls.findIndex((x) => x.name === d.name)],
    buffer: (d) => carriedB[bufferDecls.findIndex((x) => x.name === d.name)],
    state: (slot, _d, i) => carriedS[slots.indexOf(slot)][i],
    hyper: Object.fromEntries(hyperNames(plan.opt).map((h) => [h, gather(N.hyper(h), [])])) as Record<HyperName, Tensor>,
    anchor: (d) => outer(N.anchor(d.name), d.shape),
    mode,
  });
  body.output(body.identity(cond), 'cond_out');
  r.params.forEach((t, i) => body.output(t, `bnp_${decls[i].name}`));
  slots.forEach((slot) => r.state[slot].forEach((t, i) => body.output(t, `bns_${slot}_${decls[i].name}`)));
  r.buffers.forEach((t, i) => body.output(body.identity(t), `bnb_${bufferDecls[i].name}`));
  body.output(r.loss, 'step_loss');
  return loopModel(plan, B, K, decls, bufferDecls, body, mode.used());
}

function valueInfo(name: string, shape: readonly number[], elemType = 1): onnx.onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: shape.map((d) => ({ dimValue: d })) } } } };
}

/** The outer graph around a Loop body: data [K,B,...], hyper [K], carried params/state/buffers in, final values + losses out. */
function loopModel(plan: Plan, B: number, K: number, decls: readonly ParamDecl[], bufferDecls: readonly BufferDecl[],
  body: GraphBuilder, seeded: boolean): Uint8Array {
  const P = onnx.onnx;
  const slots = stateSlots(plan.opt);
  const info = plan.model.info;
  const inputs: onnx.onnx.IValueInfoProto[] = [
    ...Object.entries(info.inputs).map(([n, s]) => valueInfo(N.input(n), [K, B, ...s])),
    ...plan.loss.targets.map((t) => valueInfo(N.target(t.name), [K, B, ...t.shape])),
    ...hyperNames(plan.opt).map((h) => valueInfo(N.hyper(h), [K])),
    ...decls.map((d) => valueInfo(N.param(d.name), d.shape)),
    ...slots.flatMap((slot) => decls.map((d) => valueInfo(N.state(slot, d.name), d.shape))),
    ...bufferDecls.map((d) => valueInfo(N.buffer(d.name), d.shape)),
    ...(plan.proximalMu > 0 ? decls.map((d) => valueInfo(N.anchor(d.name), d.shape)) : []),
    ...(seeded ? [valueInfo(N.seed, [K], 7)] : []),
  ];
  const carriedIn = [...decls.map((d) => N.param(d.name)), ...slots.flatMap((slot) => decls.map((d) => N.state(slot, d.name))),
    ...bufferDecls.map((d) => N.buffer(d.name))];
  const carriedOut = [...decls.map((d) => N.newParam(d.name)), ...slots.flatMap((slot) => decls.map((d) => N.newState(slot, d.name))),
    ...bufferDecls.map((d) => N.newBuffer(d.name))];
  const outShapes = [...decls.map((d) => d.shape), ...slots.flatMap(() => decls.map((d) => d.shape)), ...bufferDecls.map((d) => d.shape)];
  const loop: onnx.onnx.INodeProto = {
    name: 'train_loop', opType: 'Loop',
    input: ['loop_m', 'loop_cond', ...carriedIn],
    output: [...carriedOut, 'losses'],
    attribute: [{ name: 'body', type: P.AttributeProto.AttributeType.GRAPH, g: graphProto(body) }],
  };
  const model = P.ModelProto.create({
    irVersion: 8, producerName: 'cohort', opsetImport: [{ domain: '', version: DEFAULT_OPSET }],
    graph: {
      name: 'train_loop', node: [loop], input: inputs,
      output: [...carriedOut.map((n, i) => valueInfo(n, outShapes[i])), valueInfo('losses', [K])],
      initializer: [
        tensorProto('loop_m', { dtype: 'int64', shape: [], data: BigInt64Array.from([BigInt(K)]) }),
        tensorProto('loop_cond', { dtype: 'bool', shape: [], data: Uint8Array.from([1]) }),
      ],
    },
  });
  return P.ModelProto.encode(model).finish();
}

/** Loss and its gradient for every parameter (outputs loss, g_<param>): for gradient checks and gradient-based averaging. */
export function gradientGraph(plan: Plan, B: number): Uint8Array {
  const g = new GraphBuilder('gradient');
  g.poolsPerChannel = true; // weights are inputs: no NCHWc convs to chain with (GraphCore.poolsPerChannel)
  const params: Tensor[] = [];
  const s = new ParamScope((d) => { const t = g.input(N.param(d.name), d.shape); params.push(t); return t; },
    (d) => g.input(N.buffer(d.name), d.shape));
  // training mode (batch statistics, dropout with the fed seed): the function a train step differentiates
  const out = plan.model.forward(g, s, dataInputs(g, plan.model, B), trainingMode(() => g.input(N.seed, [], 'int64')));
  const loss = plan.loss.build(g, out, targetInputs(g, plan.loss, B));
  const grads = gradients(g, loss, params);
  g.output(loss, 'loss');
  s.decls.forEach((d, i) => g.output(grads[i], `g_${d.name}`));
  return g.toModelProto();
}

/** Probabilities from the model's outputs (softmax / sigmoid over the class axis); a Cox model's risk score as it is. */
function probabilities(g: GraphBuilder, out: ModelOutputs, loss: LossStage): { prob: Tensor; markers?: Tensor } {
  const z = (out.logits ?? out.seg) as Tensor;
  // Cox: the linear predictor (log relative hazard) itself; a sigmoid would tie large scores in float32 and spoil the C-index.
  // Regression (mse): the predicted value itself, the quantity the loss compared with the target.
  // Discrete-time survival: the cumulative hazard at the last interval end (survival-discrete.ts), one risk score per sample.
  const prob = loss.spec.type === 'discrete-hazard' ? cumulativeHazard(g, z)
    : loss.spec.type === 'cox' || loss.spec.type === 'mse' ? g.identity(z) : z.shape[1] === 1 ? g.sigmoid(z) : g.softmax(z, 1);
  return out.markers ? { prob, markers: g.sigmoid(out.markers) } : { prob };
}

export function evalGraph(plan: Plan, B: number): Uint8Array {
  const g = new GraphBuilder('eval');
  g.poolsPerChannel = true; // weights are inputs: no NCHWc convs to chain with (GraphCore.poolsPerChannel)
  const s = new ParamScope((d) => g.input(N.param(d.name), d.shape), (d) => g.input(N.buffer(d.name), d.shape));
  const out = plan.model.forward(g, s, dataInputs(g, plan.model, B), EVAL_MODE);
  const loss = plan.loss.build(g, out, targetInputs(g, plan.loss, B));
  const p = probabilities(g, out, plan.loss);
  g.output(loss, 'loss');
  g.output(p.prob, 'prob');
  if (p.markers) g.output(p.markers, 'markers_prob');
  return g.toModelProto();
}

/** Two batch sizes no layer width is likely to equal: a constant that differs between builds at A and B carries the batch. */
const SENTINEL_A = 97;
const SENTINEL_B = 89;

/**
 * The deployable model: inputs named as the data's inputs, weights as initializers, outputs prob (+ markers_prob); a Cox
 * model outputs `risk` (the linear predictor, log relative hazard) instead of prob.
 * `batch` = 'dynamic' (default) gives the batch dimension the symbolic name N, so the file scores any number of samples:
 * the graph is built twice, at two sentinel batch sizes, and every int64 constant a node reads that differs between the
 * two builds carries the batch (a Reshape target, an up-sampling's [o, k, n, ...], a flattened [n*c, ...]). Each such
 * entry is k * batch; a Reshape with one such entry gets -1 there (ONNX infers it), any other gets its target computed
 * from the input's batch at run time (Shape -> Mul -> Concat). Anything else that differs (a float constant, an
 * attribute, the node list) is an error rather than a model that runs only at the sentinel batch (issue 14.4).
 */
export function exportGraph(plan: Plan, decls: readonly ParamDecl[], params: Float32Array, bufferDecls: readonly BufferDecl[],
  buffers: Float32Array, batch: number | 'dynamic'): Uint8Array {
  if (batch !== 'dynamic') return exportAt(plan, decls, params, bufferDecls, buffers, batch).toModelProto();
  const g = exportAt(plan, decls, params, bufferDecls, buffers, SENTINEL_A);
  const other = exportAt(plan, decls, params, bufferDecls, buffers, SENTINEL_B);
  symbolicBatch(g, other);
  const model = onnx.onnx.ModelProto.decode(g.toModelProto());
  // intermediate shapes (proto.ts writes them for Conv operands) were taken at the sentinel batch: left in, ORT's shape inference
  // would carry batch 97 to the outputs (a VerifyOutputSizes warning at every other batch). An export's Conv weights are
  // initializers, so nothing here needs them: ORT infers the shapes itself.
  if (model.graph) model.graph.valueInfo = [];
  for (const v of [...(model.graph?.input ?? []), ...(model.graph?.output ?? [])]) {
    const dim = v.type?.tensorType?.shape?.dim?.[0];
    if (dim) { dim.dimValue = null; dim.dimParam = 'N'; }
  }
  return onnx.onnx.ModelProto.encode(model).finish();
}

function exportAt(plan: Plan, decls: readonly ParamDecl[], params: Float32Array, bufferDecls: readonly BufferDecl[],
  buffers: Float32Array, B: number): GraphBuilder {
  const g = new GraphBuilder('cohort_model');
  const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
  const offsetsOf = (ds: readonly { name: string; shape: readonly number[] }[]): Map<string, number> => {
    let off = 0;
    return new Map(ds.map((d) => { const o = off; off += size(d.shape); return [d.name, o]; }));
  };
  const offsets = offsetsOf(decls);
  const bufferAt = offsetsOf(bufferDecls);
  const s = new ParamScope((d) => {
    const o = offsets.get(d.name) as number;
    return g.initializer(d.name, params.slice(o, o + size(d.shape)), d.shape);
  }, (d) => {
    const o = bufferAt.get(d.name) as number;
    return g.initializer(d.name, buffers.slice(o, o + size(d.shape)), d.shape);
  });
  const x = Object.fromEntries(Object.entries(plan.model.info.inputs).map(([n, shape]) => [n, g.input(n, [B, ...shape])]));
  const p = probabilities(g, plan.model.forward(g, s, x, EVAL_MODE), plan.loss);
  g.output(p.prob, isSurvivalLoss(plan.loss.spec) ? 'risk' : 'prob');
  if (p.markers) g.output(p.markers, 'markers_prob');
  return g;
}

function exportMismatch(detail: string): CohortError {
  return new CohortError('EXPORT_BATCH', `cannot export with a symbolic batch: ${detail}`,
    'export at a fixed batch (Trainer.exportOnnx({ batch })) and report the model spec as a bug');
}

/** Rewrite g (built at SENTINEL_A) so that no constant carries the batch, using `other` (built at SENTINEL_B) to find them. */
function symbolicBatch(g: GraphBuilder, other: GraphBuilder): void {
  if (g.nodes.length !== other.nodes.length) throw exportMismatch('the two builds have different node lists');
  const front: NodeRecord[] = [];
  let batch: Tensor | undefined;
  const batchOf = (): Tensor => {
    if (batch) return batch;
    const first = g.inputs[0];
    const at = g.nodes.length;
    batch = g.emit1('Shape', [first], [1], 'int64', { start: { i: 0 }, end: { i: 1 } });
    front.push(...g.nodes.splice(at));
    return batch;
  };
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i];
    const m = other.nodes[i];
    if (n.op !== m.op || n.inputs.length !== m.inputs.length || JSON.stringify(n.attrs) !== JSON.stringify(m.attrs)) {
      throw exportMismatch(`node ${n.name} (${n.op}) differs between batch sizes`);
    }
    const inputs = n.inputs.map((t, j) => {
      const a = t && g.initializers.get(t.name);
      const b = m.inputs[j] && other.initializers.get((m.inputs[j] as Tensor).name);
      if (!a || !b || sameConst(a, b)) return t;
      if (!(a.data instanceof BigInt64Array) || !(b.data instanceof BigInt64Array) || a.data.length !== b.data.length) {
        throw exportMismatch(`input ${j} of ${n.name} (${n.op}) depends on the batch and is not an int64 shape`);
      }
      const at = g.nodes.length;
      const shape = batchShape(g, n, a.data, b.data, batchOf);
      front.push(...g.nodes.splice(at));
      return shape;
    });
    g.nodes[i] = { ...n, inputs };
  }
  g.nodes.unshift(...front);
  // the replaced shape constants are read by no node now (ORT would warn about each)
  const read = new Set(g.nodes.flatMap((n) => n.inputs.map((t) => t?.name)));
  for (const name of [...g.initializers.keys()]) if (!read.has(name)) g.initializers.delete(name);
}

function sameConst(a: ConstTensor, b: ConstTensor): boolean {
  if (a.dtype !== b.dtype || a.data.length !== b.data.length || a.shape.join() !== b.shape.join()) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

/** The shape constant `a` (at SENTINEL_A) as a tensor valid at any batch: -1 in a Reshape where that suffices, else computed. */
function batchShape(g: GraphBuilder, n: NodeRecord, a: BigInt64Array, b: BigInt64Array, batchOf: () => Tensor): Tensor {
  const factor = [...a].map((v, k) => {
    if (v === b[k]) return 0n;
    const f = v / BigInt(SENTINEL_A);
    if (f * BigInt(SENTINEL_A) !== v || f * BigInt(SENTINEL_B) !== b[k]) throw exportMismatch(`${n.name} (${n.op}) holds ${v}, no multiple of the batch`);
    return f;
  });
  const dynamic = factor.filter((f) => f !== 0n).length;
  if (n.op === 'Reshape' && dynamic === 1 && ![...a].some((v, k) => factor[k] === 0n && v <= 0n)) {
    return g.constant([...a].map((v, k) => (factor[k] === 0n ? Number(v) : -1)), 'int64');
  }
  const parts = [...a].map((v, k) => (factor[k] === 0n ? g.constant([Number(v)], 'int64')
    : factor[k] === 1n ? batchOf() : g.emit1('Mul', [batchOf(), g.constant([Number(factor[k])], 'int64')], [1], 'int64')));
  return g.emit1('Concat', parts, [a.length], 'int64', { axis: { i: 0 } });
}

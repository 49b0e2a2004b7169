/**
 * GraphBuilder: build an ONNX (opset 18) graph with static shapes, then differentiate it with
 * `gradients()` from ../autodiff and serialise it with `toModelProto()` for onnxruntime-node.
 *
 *   const g = new GraphBuilder('step');
 *   const x = g.input('x', [32, 30]); const w = g.input('w', [30, 2]);
 *   const loss = g.reduceMean(g.mul(g.matmul(x, w), g.matmul(x, w)));
 *   const [dw] = gradients(g, loss, [w]); g.output(loss, 'loss'); g.output(dw, 'dw');
 *   const bytes = g.toModelProto();
 *
 * Every primitive method records one ONNX node with a backward rule in ../autodiff/rules; composite layers
 * (batchNorm, instanceNorm, groupNorm, dropout, and 3D kernel=stride convTranspose) are built from primitives.
 * Shape errors throw CohortError('SHAPE_MISMATCH'); duplicate names CohortError('DUPLICATE_NAME').
 * `emit`/`emit1` (from GraphCore) add any other ONNX op with a caller-given output shape and no backward rule
 * (gradients() throws NO_GRADIENT if such a node lies between the parameters and the loss).
 * Conventions: NC<spatial> layout; pads = [begin per spatial axis..., end per spatial axis...]; opset-18 semantics.
 */
import { GraphCore } from './core.ts';
import { modelProto } from './proto.ts';
import type { DType, Tensor } from './types.ts';
import * as ew from './ops/elementwise.ts';
import * as la from './ops/linalg.ts';
import * as sh from './ops/shape-ops.ts';
import { reduce } from './ops/reduce.ts';
import { softmaxLike } from './ops/softmax.ts';
import * as cv from './ops/conv.ts';
import * as pl from './ops/pool.ts';
import * as nm from './ops/norm.ts';
import { dropout } from './ops/dropout.ts';

export class GraphBuilder extends GraphCore {
  // --- linear algebra
  matmul(a: Tensor, b: Tensor): Tensor { return la.matmul(this, a, b); }
  gemm(a: Tensor, b: Tensor, c?: Tensor | null, opts?: la.GemmOpts): Tensor { return la.gemm(this, a, b, c, opts); }
  // --- broadcasting arithmetic
  add(a: Tensor, b: Tensor): Tensor { return ew.binary(this, 'Add', a, b); }
  sub(a: Tensor, b: Tensor): Tensor { return ew.binary(this, 'Sub', a, b); }
  mul(a: Tensor, b: Tensor): Tensor { return ew.binary(this, 'Mul', a, b); }
  div(a: Tensor, b: Tensor): Tensor { return ew.binary(this, 'Div', a, b); }
  /** Elementwise maximum / minimum (gradient goes to the larger / smaller operand; ties to the first). */
  max(a: Tensor, b: Tensor): Tensor { return ew.binary(this, 'Max', a, b); }
  min(a: Tensor, b: Tensor): Tensor { return ew.binary(this, 'Min', a, b); }
  // --- unary math
  neg(x: Tensor): Tensor { return ew.unary(this, 'Neg', x); }
  sqrt(x: Tensor): Tensor { return ew.unary(this, 'Sqrt', x); }
  pow(x: Tensor, p: number): Tensor { return ew.pow(this, x, p); }
  exp(x: Tensor): Tensor { return ew.unary(this, 'Exp', x); }
  log(x: Tensor): Tensor { return ew.unary(this, 'Log', x); }
  abs(x: Tensor): Tensor { return ew.unary(this, 'Abs', x); }
  reciprocal(x: Tensor): Tensor { return ew.unary(this, 'Reciprocal', x); }
  identity(x: Tensor): Tensor { return ew.unary(this, 'Identity', x); }
  clip(x: Tensor, min?: number, max?: number): Tensor { return ew.clip(this, x, min, max); }
  // --- activations
  relu(x: Tensor): Tensor { return ew.unary(this, 'Relu', x); }
  leakyRelu(x: Tensor, alpha = 0.01): Tensor { return ew.leakyRelu(this, x, alpha); }
  sigmoid(x: Tensor): Tensor { return ew.unary(this, 'Sigmoid', x); }
  tanh(x: Tensor): Tensor { return ew.unary(this, 'Tanh', x); }
  /** log(1 + exp(x)), numerically stable in ORT. */
  softplus(x: Tensor): Tensor { return ew.unary(this, 'Softplus', x); }
  softmax(x: Tensor, axis = -1): Tensor { return softmaxLike(this, 'Softmax', x, axis); }
  logSoftmax(x: Tensor, axis = -1): Tensor { return softmaxLike(this, 'LogSoftmax', x, axis); }
  // --- non-differentiable helpers (zero gradient / no gradient flows through them)
  sign(x: Tensor): Tensor { return ew.unary(this, 'Sign', x); }
  floor(x: Tensor): Tensor { return ew.unary(this, 'Floor', x); }
  greater(a: Tensor, b: Tensor): Tensor { return ew.compare(this, 'Greater', a, b); }
  less(a: Tensor, b: Tensor): Tensor { return ew.compare(this, 'Less', a, b); }
  equal(a: Tensor, b: Tensor): Tensor { return ew.compare(this, 'Equal', a, b); }
  not(x: Tensor): Tensor { return ew.unary(this, 'Not', x); }
  /** cond ? a : b (gradient flows to a and b, not to cond). */
  where(cond: Tensor, a: Tensor, b: Tensor): Tensor { return ew.where(this, cond, a, b); }
  cast(x: Tensor, to: DType): Tensor { return ew.cast(this, x, to); }
  // --- layout
  reshape(x: Tensor, shape: readonly number[]): Tensor { return sh.reshape(this, x, shape); }
  flatten(x: Tensor, axis = 1): Tensor { return sh.flatten(this, x, axis); }
  transpose(x: Tensor, perm?: readonly number[]): Tensor { return sh.transpose(this, x, perm); }
  concat(xs: readonly Tensor[], axis: number): Tensor { return sh.concat(this, xs, axis); }
  split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] { return sh.split(this, x, sizes, axis); }
  slice(x: Tensor, spec: sh.SliceSpec): Tensor { return sh.slice(this, x, spec); }
  expand(x: Tensor, shape: readonly number[]): Tensor { return sh.expand(this, x, shape); }
  /** Zero padding, pads = [begin per axis..., end per axis...]. */
  pad(x: Tensor, pads: readonly number[]): Tensor { return sh.pad(this, x, pads); }
  // --- reductions (axes omitted = all axes)
  reduceSum(x: Tensor, axes?: readonly number[], keepdims = false): Tensor { return reduce(this, 'ReduceSum', x, axes, keepdims); }
  reduceMean(x: Tensor, axes?: readonly number[], keepdims = false): Tensor { return reduce(this, 'ReduceMean', x, axes, keepdims); }
  /** Gradient goes to the maximal elements (ties share it). */
  reduceMax(x: Tensor, axes?: readonly number[], keepdims = false): Tensor { return reduce(this, 'ReduceMax', x, axes, keepdims); }

  // --- convolution and pooling (1D/2D/3D, NC<spatial>)
  conv(x: Tensor, w: Tensor, b?: Tensor | null, opts?: cv.ConvOpts): Tensor { return cv.conv(this, x, w, b, opts); }
  convTranspose(x: Tensor, w: Tensor, b?: Tensor | null, opts?: cv.ConvTransposeOpts): Tensor {
    return cv.convTranspose(this, x, w, b, opts);
  }
  maxPool(x: Tensor, opts: pl.PoolOpts): Tensor { return pl.maxPool(this, x, opts); }
  averagePool(x: Tensor, opts: pl.PoolOpts): Tensor { return pl.averagePool(this, x, opts); }
  globalAveragePool(x: Tensor): Tensor { return pl.globalAveragePool(this, x); }
  // --- composite layers (built from primitives above)
  /** Training: batch statistics, returns updated running mean/var to be fed back as state. Eval: running statistics. */
  batchNorm(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor, opts: nm.BatchNormOpts): nm.BatchNormResult {
    return nm.batchNorm(this, x, gamma, beta, runningMean, runningVar, opts);
  }
  instanceNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps?: number): Tensor { return nm.instanceNorm(this, x, gamma, beta, eps); }
  groupNorm(x: Tensor, groups: number, gamma: Tensor, beta: Tensor, eps?: number): Tensor {
    return nm.groupNorm(this, x, groups, gamma, beta, eps);
  }
  /**
   * Seeded inverted dropout. `seed`: an int64 scalar graph input fed a fresh value per step (null = eval, identity);
   * `salt` distinguishes several dropout layers sharing one seed.
   */
  dropout(x: Tensor, ratio: number, seed: Tensor | null, salt = 0): Tensor { return dropout(this, x, ratio, seed, salt); }
  // --- constants computed at run time (no initializer bytes in the model)
  /** A float32 tensor of zeros (ConstantOfShape). */
  zeros(shape: readonly number[]): Tensor {
    const value = { t: { dtype: 'float32' as const, shape: [1], data: new Float32Array(1) } };
    return this.emit1('ConstantOfShape', [this.constant(shape, 'int64')], shape, 'float32', { value });
  }

  toModelProto(opts: { opset?: 18 } = {}): Uint8Array { return modelProto(this, opts.opset); }
}

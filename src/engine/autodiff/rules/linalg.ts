/** Backward rules for MatMul and Gemm. Transposes are folded into Gemm's transA/transB flags where possible. */
import type { GraphBuilder } from '../../graph/builder.ts';
import type { Tensor } from '../../graph/types.ts';
import type { Rule } from '../types.ts';
import { attrFloat, attrInt, inp, reduceTo } from '../util.ts';

function swapLast(g: GraphBuilder, t: Tensor): Tensor {
  const r = t.shape.length;
  const perm = t.shape.map((_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
  return g.transpose(t, perm);
}

/** Y = A B. dA = dY B^T, dB = A^T dY (batch dims summed back when broadcast). */
const matMul: Rule = ({ g, node, dy: [dy], needs }) => {
  const [a, b] = [inp(node, 0), inp(node, 1)];
  const d = dy!;
  if (b.shape.length === 2) {
    // A [..., m, k] times a 2-D B: fold the batch into rows and use two plain Gemms
    const k = a.shape[a.shape.length - 1];
    const p = b.shape[1];
    const a2 = a.shape.length === 2 ? a : g.reshape(a, [-1, k]);
    const d2 = d.shape.length === 2 ? d : g.reshape(d, [-1, p]);
    const da = needs[0] ? g.gemm(d2, b, null, { transB: true }) : null;
    return [
      da && da.shape.length !== a.shape.length ? g.reshape(da, a.shape) : da,
      needs[1] ? g.gemm(a2, d2, null, { transA: true }) : null,
    ];
  }
  return [
    needs[0] ? reduceTo(g, g.matmul(d, swapLast(g, b)), a.shape) : null,
    needs[1] ? reduceTo(g, g.matmul(swapLast(g, a), d), b.shape) : null,
  ];
};

/**
 * Y = alpha op(A) op(B) + beta C.
 * d op(A) = alpha dY op(B)^T and d op(B) = alpha op(A)^T dY; when op is a transpose, transpose those back.
 */
const gemm: Rule = ({ g, node, dy: [dy], needs }) => {
  const [a, b] = [inp(node, 0), inp(node, 1)];
  const c = node.inputs[2];
  const tA = attrInt(node, 'transA', 0) === 1;
  const tB = attrInt(node, 'transB', 0) === 1;
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  const d = dy!;
  const da = !needs[0] ? null : tA
    ? g.gemm(b, d, null, { transA: tB, transB: true, alpha }) // dA = alpha op(B) dY^T
    : g.gemm(d, b, null, { transB: !tB, alpha }); // dA = alpha dY op(B)^T
  const db = !needs[1] ? null : tB
    ? g.gemm(d, a, null, { transA: true, transB: tA, alpha }) // dB = alpha dY^T op(A)
    : g.gemm(a, d, null, { transA: !tA, alpha }); // dB = alpha op(A)^T dY
  const dc = c && needs[2] ? reduceTo(g, beta === 1 ? d : g.mul(d, g.constant(beta)), c.shape) : null;
  return [da, db, dc];
};

export const linalgRules: Record<string, Rule> = { MatMul: matMul, Gemm: gemm };

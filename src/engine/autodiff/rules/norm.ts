/**
 * Backward rule for ONNX InstanceNormalization (y = gamma * (x - mean) * inv + beta per (sample, channel), with
 * inv = 1/sqrt(var + eps)). The forward is ORT's fused kernel; the backward recomputes the statistics and needs
 * no full-size xhat: with d = x - mean, k = gamma * inv, s1 = mean(dY), s2 = mean(dY * d) per (sample, channel):
 *   dX = k * dY - (k * inv^2 * s2) * d - k * s1,   dgamma = sum_n L * inv * s2,   dbeta = sum_n L * s1
 * (L = spatial size): ~11 full-size passes instead of the ~22 of the composed Sub/Mul/ReduceMean chain and its
 * backward.
 */
import type { Rule } from '../types.ts';
import { attrFloat, inp } from '../util.ts';

const instanceNorm: Rule = ({ g, node, dy: [dy], needs }) => {
  const [x, gamma] = [inp(node, 0), inp(node, 1)];
  const [B, C] = x.shape;
  const L = x.shape.slice(2).reduce((a, b) => a * b, 1);
  const eps = attrFloat(node, 'epsilon', 1e-5);
  const r = g.reshape(x, [B, C, L]);
  const dyr = g.reshape(dy!, [B, C, L]);
  const d = g.sub(r, g.reduceMean(r, [2], true));
  const inv = g.reciprocal(g.sqrt(g.add(g.reduceMean(g.mul(d, d), [2], true), g.constant(eps)))); // [B, C, 1]
  const s1 = g.reduceMean(dyr, [2], true);
  const s2 = g.reduceMean(g.mul(dyr, d), [2], true);
  let dx = null;
  if (needs[0]) {
    const k = g.mul(g.reshape(gamma, [1, C, 1]), inv);
    const cd = g.mul(g.mul(k, g.mul(inv, inv)), s2);
    dx = g.reshape(g.sub(g.sub(g.mul(k, dyr), g.mul(cd, d)), g.mul(k, s1)), x.shape);
  }
  const perChannel = (t: typeof s1) => g.reshape(g.reduceSum(g.mul(t, g.constant(L)), [0], false), [C]);
  return [dx, needs[1] ? perChannel(g.mul(inv, s2)) : null, needs[2] ? perChannel(s1) : null];
};

export const normRules: Record<string, Rule> = { InstanceNormalization: instanceNorm };

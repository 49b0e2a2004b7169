/** Backward rules for broadcasting arithmetic and unary math. Each reads as the derivative it implements. */
import type { Rule } from '../types.ts';
import { attrFloat, inp, mask, reduceTo } from '../util.ts';

export const elementwiseRules: Record<string, Rule> = {
  // d(a+b) = da + db, summed back over broadcast axes
  Add: ({ g, node, dy: [dy], needs }) => [
    needs[0] ? reduceTo(g, dy!, inp(node, 0).shape) : null,
    needs[1] ? reduceTo(g, dy!, inp(node, 1).shape) : null,
  ],
  Sub: ({ g, node, dy: [dy], needs }) => [
    needs[0] ? reduceTo(g, dy!, inp(node, 0).shape) : null,
    needs[1] ? g.neg(reduceTo(g, dy!, inp(node, 1).shape)) : null, // negate after reducing: fewer elements
  ],
  // d(a*b) = b da + a db
  Mul: ({ g, node, dy: [dy], needs }) => {
    const [a, b] = [inp(node, 0), inp(node, 1)];
    if (a.name === b.name) return [g.mul(g.mul(dy!, a), g.constant(2)), null]; // d(a*a) = 2a da
    return [needs[0] ? reduceTo(g, g.mul(dy!, b), a.shape) : null, needs[1] ? reduceTo(g, g.mul(dy!, a), b.shape) : null];
  },
  // d(a/b) = da/b - (a/b) db/b
  Div: ({ g, node, dy: [dy], needs }) => {
    const [a, b, y] = [inp(node, 0), inp(node, 1), node.outputs[0]];
    const t = g.div(dy!, b);
    return [needs[0] ? reduceTo(g, t, a.shape) : null, needs[1] ? g.neg(reduceTo(g, g.mul(t, y), b.shape)) : null];
  },
  // max(a,b): the gradient goes to the larger operand (ties to a)
  Max: ({ g, node, dy: [dy], needs }) => {
    const [a, b] = [inp(node, 0), inp(node, 1)];
    const toB = mask(g, g.greater(b, a));
    return [
      needs[0] ? reduceTo(g, g.sub(dy!, g.mul(dy!, toB)), a.shape) : null,
      needs[1] ? reduceTo(g, g.mul(dy!, toB), b.shape) : null,
    ];
  },
  Min: ({ g, node, dy: [dy], needs }) => {
    const [a, b] = [inp(node, 0), inp(node, 1)];
    const toB = mask(g, g.greater(a, b));
    return [
      needs[0] ? reduceTo(g, g.sub(dy!, g.mul(dy!, toB)), a.shape) : null,
      needs[1] ? reduceTo(g, g.mul(dy!, toB), b.shape) : null,
    ];
  },
  // n-ary sum (used to accumulate gradients): every input receives dY
  Sum: ({ node, dy: [dy] }) => node.inputs.map(() => dy),
  Neg: ({ g, dy: [dy] }) => [g.neg(dy!)],
  Identity: ({ dy: [dy] }) => [dy],
  // float -> float casts only (other casts stop the gradient in the driver)
  Cast: ({ dy: [dy] }) => [dy],
  // d sqrt(x) = dx / (2 sqrt(x))
  Sqrt: ({ g, node, dy: [dy] }) => [g.div(g.mul(dy!, g.constant(0.5)), node.outputs[0])],
  // d x^p = p x^(p-1) dx
  Pow: ({ g, node, dy: [dy] }) => {
    const p = node.meta?.exponent as number;
    const x = inp(node, 0);
    const dpow = p === 2 ? g.mul(x, g.constant(2)) : g.mul(g.pow(x, p - 1), g.constant(p));
    return [g.mul(dy!, dpow), null];
  },
  Exp: ({ g, node, dy: [dy] }) => [g.mul(dy!, node.outputs[0])],
  Log: ({ g, node, dy: [dy] }) => [g.div(dy!, inp(node, 0))],
  Abs: ({ g, node, dy: [dy] }) => [g.mul(dy!, g.sign(inp(node, 0)))],
  // d(1/x) = -dx / x^2 = -y^2 dx
  Reciprocal: ({ g, node, dy: [dy] }) => [g.neg(g.mul(dy!, g.mul(node.outputs[0], node.outputs[0])))],
  // relu passes the gradient where y > 0. Greater + Cast + Mul measured 0.78 ms on 1M floats (2 threads) against
  // 1.44 ms for Mul by Sign(y) (ORT's Sign kernel is not vectorised) and 0.82 ms for Where.
  // relu: Cast(Greater(y, 0)) as the mask; Mul(dY, Sign(y)) measured 2x slower (ORT's Sign kernel is not vectorised)
  Relu: ({ g, node, dy: [dy] }) => [g.mul(dy!, mask(g, g.greater(node.outputs[0], g.constant(0))))],
  // leaky relu: slope 1 where x > 0, alpha elsewhere
  LeakyRelu: ({ g, node, dy: [dy] }) => {
    const alpha = attrFloat(node, 'alpha', 0.01);
    const pos = mask(g, g.greater(inp(node, 0), g.constant(0)));
    return [g.mul(dy!, g.add(g.mul(pos, g.constant(1 - alpha)), g.constant(alpha)))];
  },
  // sigmoid' = y (1 - y)
  Sigmoid: ({ g, node, dy: [dy] }) => {
    const y = node.outputs[0];
    return [g.mul(dy!, g.mul(y, g.sub(g.constant(1), y)))];
  },
  // tanh' = 1 - y^2
  Tanh: ({ g, node, dy: [dy] }) => {
    const y = node.outputs[0];
    return [g.mul(dy!, g.sub(g.constant(1), g.mul(y, y)))];
  },
  // softplus' = sigmoid(x)
  Softplus: ({ g, node, dy: [dy] }) => [g.mul(dy!, g.sigmoid(inp(node, 0)))],
  // clip passes the gradient where min <= x <= max
  Clip: ({ g, node, dy: [dy] }) => {
    const x = inp(node, 0);
    const { min, max } = (node.meta ?? {}) as { min?: number; max?: number };
    let m = dy!;
    if (min !== undefined) m = g.mul(m, mask(g, g.not(g.less(x, g.constant(min)))));
    if (max !== undefined) m = g.mul(m, mask(g, g.not(g.greater(x, g.constant(max)))));
    return [m, null, null];
  },
  // where(c, a, b): the gradient flows to the chosen branch
  Where: ({ g, node, dy: [dy], needs }) => {
    const [c, a, b] = [inp(node, 0), inp(node, 1), inp(node, 2)];
    const zero = g.constant(0);
    return [
      null,
      needs[1] ? reduceTo(g, g.where(c, dy!, zero), a.shape) : null,
      needs[2] ? reduceTo(g, g.where(c, zero, dy!), b.shape) : null,
    ];
  },
};

/** Reverse-mode autodiff for GraphBuilder graphs: `gradients(g, loss, wrt)` appends the backward pass to g. */
export { gradients } from './gradients.ts';
export { RULES, STOP_GRADIENT } from './rules/index.ts';
export type { Rule, RuleCtx } from './types.ts';

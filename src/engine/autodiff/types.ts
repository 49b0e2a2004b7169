/** The contract between the reverse-mode driver (gradients.ts) and the per-op backward rules (rules/*). */
import type { GraphBuilder } from '../graph/builder.ts';
import type { NodeRecord, Tensor } from '../graph/types.ts';

export interface RuleCtx {
  readonly g: GraphBuilder;
  readonly node: NodeRecord;
  /** Gradient of the loss w.r.t. each node output; null where no gradient reaches that output. */
  readonly dy: readonly (Tensor | null)[];
  /** Whether the gradient of each input is wanted (inputs not depending on `wrt` are skipped for speed). */
  readonly needs: readonly boolean[];
}

/**
 * A backward rule: gradients for the node's inputs, in input order (null = none / not needed). A gradient may have
 * size-1 axes where the input has more (same rank): the driver broadcasts it, usually for free inside a Sum.
 */
export type Rule = (ctx: RuleCtx) => (Tensor | null)[];

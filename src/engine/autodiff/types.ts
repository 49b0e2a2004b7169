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
  /** The forward graph around the node, for rules that fuse with a neighbour (see rules/pool.ts). */
  readonly graph: GraphView;
}

export interface GraphView {
  /** The node that produced a tensor (undefined for graph inputs and initializers). */
  producer(t: Tensor): NodeRecord | undefined;
  /** How many forward nodes read a tensor. */
  consumers(t: Tensor): number;
  /**
   * Declare that this rule's input gradient already includes the backward of `node` (a single-input,
   * single-output node whose output is consumed only here): the driver then passes the gradient straight through.
   */
  absorb(node: NodeRecord): void;
}

/**
 * A backward rule: gradients for the node's inputs, in input order (null = none / not needed). A gradient may have
 * size-1 axes where the input has more (same rank): the driver broadcasts it, usually for free inside a Sum.
 */
export type Rule = (ctx: RuleCtx) => (Tensor | null)[];

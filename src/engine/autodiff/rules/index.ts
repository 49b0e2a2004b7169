/** The rule table: ONNX op type -> backward rule. Ops listed in STOP_GRADIENT have zero gradient by definition. */
import type { Rule } from '../types.ts';
import { elementwiseRules } from './elementwise.ts';
import { layoutRules } from './layout.ts';
import { linalgRules } from './linalg.ts';
import { reduceRules } from './reduce.ts';
import { convRules } from './conv.ts';
import { poolRules } from './pool.ts';
import { normRules } from './norm.ts';

export const RULES: Readonly<Record<string, Rule>> = {
  ...elementwiseRules,
  ...linalgRules,
  ...layoutRules,
  ...reduceRules,
  ...convRules,
  ...poolRules,
  ...normRules,
};

/** Piecewise-constant or boolean ops: no gradient flows through them (their outputs do not depend on `wrt`). */
export const STOP_GRADIENT: ReadonlySet<string> = new Set([
  'Sign', 'Floor', 'Ceil', 'Round', 'Greater', 'Less', 'Equal', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or',
  'ArgMax', 'ArgMin', 'Shape', 'ConstantOfShape', 'RandomUniformLike', 'RandomNormalLike',
]);

/** Backward rules for layout ops: each moves the gradient back to where the value came from. */
import { CohortError } from '../../../util/errors.ts';
import type { Rule } from '../types.ts';
import { attrInt, attrInts, dyOrZero, inp, reduceTo } from '../util.ts';

export const layoutRules: Record<string, Rule> = {
  Reshape: ({ g, node, dy: [dy] }) => [g.reshape(dy!, inp(node, 0).shape), null],
  Flatten: ({ g, node, dy: [dy] }) => [g.reshape(dy!, inp(node, 0).shape)],
  // the inverse permutation undoes a transpose
  Transpose: ({ g, node, dy: [dy] }) => {
    const perm = attrInts(node, 'perm');
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(dy!, inv)];
  },
  // concat's gradient is the split of dY along the same axis
  Concat: ({ g, node, dy: [dy] }) => {
    const axis = attrInt(node, 'axis', 0);
    const sizes = node.inputs.map((t) => t!.shape[axis]);
    return sizes.length === 1 ? [dy] : g.split(dy!, sizes, axis);
  },
  Split: ({ g, node, dy }) => {
    const axis = attrInt(node, 'axis', 0);
    return [g.concat(node.outputs.map((_, i) => dyOrZero(g, node, dy, i)), axis), null];
  },
  // slice's gradient is dY zero-padded back into the sliced region (unit steps)
  Slice: ({ g, node, dy: [dy] }) => {
    const x = inp(node, 0);
    const { starts, ends, axes, steps } = node.meta as { starts: number[]; ends: number[]; axes: number[]; steps: number[] };
    if (steps.some((s) => s !== 1)) {
      throw new CohortError('NO_GRADIENT', `Slice ${node.name}: no gradient for a strided slice (steps ${steps.join(',')})`,
        'use unit steps on the path from the parameters to the loss (e.g. a strided conv or pool instead)');
    }
    const r = x.shape.length;
    const pads = new Array<number>(2 * r).fill(0);
    axes.forEach((a, i) => {
      pads[a] = starts[i];
      pads[a + r] = x.shape[a] - ends[i];
    });
    return [g.pad(dy!, pads), null, null, null, null];
  },
  // pad's gradient is the slice of dY that holds the original values
  Pad: ({ g, node, dy: [dy] }) => {
    const x = inp(node, 0);
    const pads = (node.meta as { pads: number[] }).pads;
    const r = x.shape.length;
    const axes = x.shape.map((_, i) => i);
    return [g.slice(dy!, { starts: axes.map((a) => pads[a]), ends: axes.map((a) => pads[a] + x.shape[a]), axes }), null];
  },
  Expand: ({ g, node, dy: [dy] }) => [reduceTo(g, dy!, inp(node, 0).shape), null],
};

/**
 * Parameters of a model as the zoo declares them. A model's forward function asks a ParamScope for each weight by name;
 * the scope decides what the weight is in this graph (a graph input in train/eval graphs, an initializer in the exported
 * model) and records the declaration order, which defines the flat layout. Initial values: seeded He (ReLU layers) or
 * Xavier (output layers) draws from Rng, identical on every machine.
 */
import { CohortError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import type { Tensor } from './graph/index.ts';

export type InitKind = 'he' | 'xavier' | 'zeros' | 'ones';

export interface ParamDecl {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: InitKind;
  readonly fanIn: number;
  readonly fanOut: number;
}

export class ParamScope {
  readonly decls: ParamDecl[] = [];
  private readonly names = new Set<string>();

  constructor(private readonly make: (decl: ParamDecl) => Tensor) {}

  param(name: string, shape: readonly number[], init: InitKind, fanIn = 1, fanOut = 1): Tensor {
    if (this.names.has(name)) {
      throw new CohortError('DUPLICATE_PARAM', `parameter '${name}' is declared twice`, 'layer names in a model must be unique');
    }
    this.names.add(name);
    const decl: ParamDecl = { name, shape: [...shape], init, fanIn, fanOut };
    this.decls.push(decl);
    return this.make(decl);
  }
}

/** Initial values for all declarations, in order, from one seeded stream. */
export function initialValues(decls: readonly ParamDecl[], seed: number): Float32Array {
  const total = decls.reduce((a, d) => a + d.shape.reduce((x, y) => x * y, 1), 0);
  const out = new Float32Array(total);
  const rng = new Rng(seed);
  let off = 0;
  for (const d of decls) {
    const n = d.shape.reduce((x, y) => x * y, 1);
    const v = out.subarray(off, off + n);
    switch (d.init) {
      case 'zeros': break;
      case 'ones': v.fill(1); break;
      case 'he': { const s = Math.sqrt(2 / d.fanIn); for (let i = 0; i < n; i++) v[i] = rng.normal() * s; break; }
      case 'xavier': { const a = Math.sqrt(6 / (d.fanIn + d.fanOut)); for (let i = 0; i < n; i++) v[i] = (2 * rng.next() - 1) * a; break; }
    }
    off += n;
  }
  return out;
}

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

/** Non-trainable model state (BatchNorm running statistics): stays on its peer, not averaged, saved in checkpoints. */
export interface BufferDecl { readonly name: string; readonly shape: readonly number[]; readonly init: 'zeros' | 'ones' }

/** What a forward pass is for: training (batch statistics, dropout with a per-step seed) or evaluation. */
export interface ForwardMode {
  readonly training: boolean;
  /** The per-step int64 dropout seed; created on first use, so graphs without dropout have no seed input. */
  seed(): Tensor | null;
}

export const EVAL_MODE: ForwardMode = { training: false, seed: () => null };

export class ParamScope {
  readonly decls: ParamDecl[] = [];
  readonly buffers: BufferDecl[] = [];
  /** Buffer values after this forward pass (training mode only), by buffer name. */
  readonly updates = new Map<string, Tensor>();
  private readonly names = new Set<string>();

  constructor(private readonly make: (decl: ParamDecl) => Tensor,
    private readonly makeBuffer: (decl: BufferDecl) => Tensor = () => {
      throw new Error('this graph has no buffers');
    }) {}

  buffer(name: string, shape: readonly number[], init: 'zeros' | 'ones'): Tensor {
    if (this.names.has(name)) {
      throw new CohortError('DUPLICATE_PARAM', `buffer '${name}' is declared twice`, 'layer names in a model must be unique');
    }
    this.names.add(name);
    const decl: BufferDecl = { name, shape: [...shape], init };
    this.buffers.push(decl);
    return this.makeBuffer(decl);
  }

  update(name: string, t: Tensor): void { this.updates.set(name, t); }

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

export function initialBuffers(decls: readonly BufferDecl[]): Float32Array {
  const out = new Float32Array(decls.reduce((a, d) => a + d.shape.reduce((x, y) => x * y, 1), 0));
  let off = 0;
  for (const d of decls) {
    const n = d.shape.reduce((x, y) => x * y, 1);
    if (d.init === 'ones') out.fill(1, off, off + n);
    off += n;
  }
  return out;
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

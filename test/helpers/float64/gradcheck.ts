/**
 * Gradient checking for backward rules. For a function y = f(inputs) built with GraphBuilder, the checked loss is
 * L = sum(r * y) with a fixed random r, so every output element matters. The analytic gradients come from
 * `gradients()` run in ORT; the reference is a central finite difference of L computed in float64 either from
 * ORT's float32 forward (ops ORT runs exactly enough) or from a float64 TypeScript reference (conv/pool).
 */
import { GraphBuilder, type Tensor } from '../../../src/engine/graph/index.ts';
import { gradients } from '../../../src/engine/autodiff/index.ts';
import { Rng } from '../../../src/util/random.ts';
import { run, session, type Feed } from './ort.ts';

export interface OpCase {
  inputs: Readonly<Record<string, readonly number[]>>;
  build: (g: GraphBuilder, x: Readonly<Record<string, Tensor>>) => Tensor;
  /** Names of inputs to differentiate (default: all). */
  wrt?: readonly string[];
  /** Custom input values (default: standard normal). */
  init?: (name: string, n: number, rng: Rng) => Float32Array;
  /** float64 reference of f; when given, finite differences use it instead of ORT's float32 forward. */
  reference?: (x: Readonly<Record<string, Float64Array>>) => Float64Array;
  seed?: number;
  step?: number;
}

export interface CheckResult { forwardErr: number; gradErr: Record<string, number> }

const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-6);
}

function dot(r: Float64Array, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < r.length; i++) s += r[i] * y[i];
  return s;
}

/** Forward ORT vs reference (if any), and analytic gradients vs central differences; relative L2 errors. */
export async function checkGradients(c: OpCase): Promise<CheckResult> {
  const rng = new Rng(c.seed ?? 7);
  const g = new GraphBuilder('gradcheck');
  const tensors: Record<string, Tensor> = {};
  for (const [k, shape] of Object.entries(c.inputs)) tensors[k] = g.input(k, shape);
  const y = c.build(g, tensors);
  const r = g.input('r__', y.shape);
  const loss = g.reduceSum(g.mul(y, r));
  const wrt = c.wrt ?? Object.keys(c.inputs);
  const grads = gradients(g, loss, wrt.map((k) => tensors[k]));
  g.output(y, 'y__');
  grads.forEach((t, i) => g.output(t, `grad__${wrt[i]}`));

  const feeds: Record<string, Feed> = {};
  for (const [k, shape] of Object.entries(c.inputs)) {
    const n = size(shape);
    feeds[k] = { shape, data: c.init ? c.init(k, n, rng) : Float32Array.from({ length: n }, () => rng.normal()) };
  }
  const rr = Float64Array.from({ length: size(y.shape) }, () => rng.normal());
  feeds.r__ = { shape: y.shape, data: Float32Array.from(rr) };
  const s = await session(g);
  const out = await run(s, feeds);

  const f64 = (): Record<string, Float64Array> =>
    Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, Float64Array.from(v.data as Float32Array)]));
  const forwardErr = c.reference ? relErr(out.y__, c.reference(f64())) : 0;
  const h = c.step ?? (c.reference ? 1e-5 : 1e-2);
  const gradErr: Record<string, number> = {};
  for (const k of wrt) {
    const fd = new Float64Array(size(c.inputs[k]));
    for (let i = 0; i < fd.length; i++) fd[i] = await centralDiff(c, s, feeds, f64, k, i, h, rr);
    gradErr[k] = relErr(out[`grad__${k}`], fd);
  }
  await s.release();
  return { forwardErr, gradErr };
}

async function centralDiff(c: OpCase, s: Awaited<ReturnType<typeof session>>, feeds: Record<string, Feed>,
  f64: () => Record<string, Float64Array>, k: string, i: number, h: number, rr: Float64Array): Promise<number> {
  const lossAt = async (delta: number): Promise<number> => {
    if (c.reference) {
      const x = f64();
      x[k][i] += delta;
      return dot(rr, c.reference(x));
    }
    const data = Float32Array.from(feeds[k].data as Float32Array);
    data[i] += delta;
    const o = await run(s, { ...feeds, [k]: { shape: feeds[k].shape, data } });
    return dot(rr, o.y__);
  }
  // float32 inputs: use the actually representable perturbation
  const x0 = (feeds[k].data as Float32Array)[i];
  const up = c.reference ? h : Math.fround(x0 + h) - x0;
  const down = c.reference ? h : x0 - Math.fround(x0 - h);
  return ((await lossAt(up)) - (await lossAt(-down))) / (up + down);
}

/**
 * CPU-only lowering of 2D convolutions to onnxruntime's blocked-channel (NCHWc) kernels when the weights are not constants.
 *
 * ORT's NchwcTransformer moves a Conv to its fast NCHWc kernel (MLAS direct convolution on channels blocked by 16 with AVX-512,
 * 8 with AVX2) only when the weight is an initializer: it reorders the weight once at load time. In our train and eval graphs the
 * weights are graph inputs (and the input gradient's flipped kernel is computed), so every Conv ran ORT's generic im2col + GEMM
 * path. This pass, applied to the serialised model just before a CPU session is created (providers.ts), rewrites each qualifying
 * Conv node of the default domain into
 *
 *   W [O, C, kh, kw] -> Reshape [O/B, B, C/B, B, kh*kw] -> Transpose [0, 2, 4, 3, 1] -> Reshape [O, C, kh, kw]   (MLAS OIHWBiBo)
 *   X -> com.microsoft.nchwc.ReorderInput -> com.microsoft.nchwc.Conv(Xc, W', bias) -> ReorderOutput(channels = O) -> Y
 *
 * so the kernel reads the reordered weight at run time (NchwcConv takes W as an ordinary input). Only 2D, group 1, C and O
 * multiples of the block size B (ReorderInput pads channels otherwise; a first layer with C < B would need its 1M-float output
 * reordered back: measured slower). B comes from ORT itself (providers.ts probes ReorderInput's output shape), so a machine
 * whose MLAS picks another block size gets a matching layout, and one without NCHWc kernels gets none of this.
 * The graph the rest of the engine builds, differentiates and exports is unchanged: WebGPU/CUDA sessions and exported models
 * never see these contrib ops. Shapes come from the value_info entries proto.ts writes for every Conv input.
 */
import onnx from 'onnx-proto';

type Graph = onnx.onnx.IGraphProto;
type Node = onnx.onnx.INodeProto;
type LongLike = number | { toString(): string };

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/** Process-wide switch (A/B runs, tests). */
export const nchwcConfig = { convs: true };

const num = (v: LongLike | null | undefined): number => (v === null || v === undefined ? 0 : typeof v === 'number' ? v : Number(v.toString()));

function shapeOf(v: onnx.onnx.IValueInfoProto): number[] | undefined {
  const dims = v.type?.tensorType?.shape?.dim;
  if (!dims || v.type?.tensorType?.elemType !== 1) return undefined;
  const s = dims.map((d) => num(d.dimValue as LongLike | undefined));
  return s.every((d) => d > 0) ? s : undefined;
}

function attrInt(n: Node, name: string, dflt: number): number {
  const a = n.attribute?.find((x) => x.name === name);
  return a ? num(a.i as LongLike | undefined) : dflt;
}

function int64Tensor(name: string, v: readonly number[]): onnx.onnx.ITensorProto {
  return { name, dims: [v.length], dataType: 7, rawData: new Uint8Array(BigInt64Array.from(v.map((x) => BigInt(x))).buffer) };
}

interface Ctx { block: number; count: number; inits: onnx.onnx.ITensorProto[] }

/** Rewrite one graph's qualifying Convs (and those of Loop/If bodies, which see the outer shapes). */
function lowerGraph(g: Graph, outer: ReadonlyMap<string, number[]>, constants: ReadonlySet<string>, ctx: Ctx): void {
  const shapes = new Map(outer);
  for (const v of [...(g.input ?? []), ...(g.valueInfo ?? []), ...(g.output ?? [])]) {
    const s = shapeOf(v);
    if (v.name && s) shapes.set(v.name, s);
  }
  const consts = new Set([...constants, ...(g.initializer ?? []).map((t) => t.name ?? '')]);
  const nodes: Node[] = [];
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) if (a.g) lowerGraph(a.g, shapes, consts, ctx);
    const lowered = n.opType === 'Conv' && !n.domain ? lowerConv(n, shapes, consts, ctx) : null;
    if (lowered) nodes.push(...lowered);
    else nodes.push(n);
  }
  g.node = nodes;
}

function lowerConv(n: Node, shapes: ReadonlyMap<string, number[]>, consts: ReadonlySet<string>, ctx: Ctx): Node[] | null {
  const [x, w, b] = n.input ?? [];
  const xs = x ? shapes.get(x) : undefined;
  const ws = w ? shapes.get(w) : undefined;
  const B = ctx.block;
  if (!xs || !ws || !w || consts.has(w) || xs.length !== 4 || ws.length !== 4 || attrInt(n, 'group', 1) !== 1) return null;
  const [o, c, kh, kw] = ws;
  if (xs[1] !== c || c % B !== 0 || o % B !== 0) return null;
  if (n.attribute?.some((a) => a.name === 'auto_pad' && a.s && new TextDecoder().decode(a.s) !== 'NOTSET')) return null;
  const id = `nchwc${ctx.count++}`;
  const y = n.output?.[0];
  if (!y || !x) return null;
  const shape5 = `${id}_s5`, shape4 = `${id}_s4`;
  ctx.inits.push(int64Tensor(shape5, [o / B, B, c / B, B, kh * kw]), int64Tensor(shape4, [o, c, kh, kw]));
  const keep = (n.attribute ?? []).filter((a) => ['pads', 'strides', 'dilations', 'kernel_shape'].includes(a.name ?? ''));
  const A = onnx.onnx.AttributeProto.AttributeType;
  return [
    { name: `${id}_w5`, opType: 'Reshape', input: [w, shape5], output: [`${id}_w5`] },
    { name: `${id}_wt`, opType: 'Transpose', input: [`${id}_w5`], output: [`${id}_wt`], attribute: [{ name: 'perm', type: A.INTS, ints: [0, 2, 4, 3, 1] }] },
    { name: `${id}_w`, opType: 'Reshape', input: [`${id}_wt`, shape4], output: [`${id}_w`] },
    { name: `${id}_xin`, opType: 'ReorderInput', domain: NCHWC_DOMAIN, input: [x], output: [`${id}_x`] },
    { name: `${id}_conv`, opType: 'Conv', domain: NCHWC_DOMAIN, input: [`${id}_x`, `${id}_w`, ...(b ? [b] : [])], output: [`${id}_y`], attribute: keep },
    { name: `${id}_yout`, opType: 'ReorderOutput', domain: NCHWC_DOMAIN, input: [`${id}_y`], output: [y], attribute: [{ name: 'channels', type: A.INT, i: o }] },
  ];
}

/**
 * The model with its qualifying Convs on ORT's NCHWc kernels for block size `block`, or null when nothing qualifies (the caller
 * then keeps the original bytes).
 */
export function lowerConvsToNchwc(model: Uint8Array, block: number): Uint8Array | null {
  if (block < 4) return null;
  const P = onnx.onnx;
  const m = P.ModelProto.decode(model);
  if (!m.graph) return null;
  const ctx: Ctx = { block, count: 0, inits: [] };
  lowerGraph(m.graph, new Map(), new Set(), ctx);
  if (!ctx.count) return null;
  m.graph.initializer = [...(m.graph.initializer ?? []), ...ctx.inits];
  if (!m.opsetImport.some((o) => o.domain === NCHWC_DOMAIN)) m.opsetImport.push(P.OperatorSetIdProto.create({ domain: NCHWC_DOMAIN, version: 1 }));
  return P.ModelProto.encode(m).finish();
}

/** A model whose only node reorders a [1, 4, 1, 1] input to NCHWc: its output's channel count is ORT's block size. */
export function blockSizeProbeModel(): Uint8Array {
  const P = onnx.onnx;
  const vi = (name: string, dim: number[]): onnx.onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType: 1, shape: { dim: dim.map((d) => ({ dimValue: d })) } } } });
  return P.ModelProto.encode(P.ModelProto.create({
    irVersion: 8, producerName: 'cohort', opsetImport: [{ domain: '', version: 18 }, { domain: NCHWC_DOMAIN, version: 1 }],
    graph: { name: 'nchwc_probe', node: [{ name: 'probe', opType: 'ReorderInput', domain: NCHWC_DOMAIN, input: ['x'], output: ['y'] }],
      input: [vi('x', [1, 4, 1, 1])], output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }] },
  })).finish();
}

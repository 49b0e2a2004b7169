/** Serialise a GraphCore to an ONNX ModelProto (onnx-proto 8.0.1, IR 8, default domain at opset 18). */
import onnx from 'onnx-proto';
import type { GraphCore } from './core.ts';
import { ONNX_DTYPE, type AttrValue, type ConstTensor, type NodeRecord, type Tensor } from './types.ts';

const P = onnx.onnx;
const A = P.AttributeProto.AttributeType;

export const DEFAULT_OPSET = 18;

export function tensorProto(name: string, c: ConstTensor): onnx.onnx.ITensorProto {
  const bytes = new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  return { name, dims: [...c.shape], dataType: ONNX_DTYPE[c.dtype], rawData: bytes.slice() };
}

function valueInfo(t: Tensor): onnx.onnx.IValueInfoProto {
  return {
    name: t.name,
    type: { tensorType: { elemType: ONNX_DTYPE[t.dtype], shape: { dim: t.shape.map((d) => ({ dimValue: d })) } } },
  };
}

function attribute(name: string, v: AttrValue): onnx.onnx.IAttributeProto {
  if ('i' in v) return { name, type: A.INT, i: v.i };
  if ('f' in v) return { name, type: A.FLOAT, f: v.f };
  if ('ints' in v) return { name, type: A.INTS, ints: [...v.ints] };
  if ('floats' in v) return { name, type: A.FLOATS, floats: [...v.floats] };
  if ('s' in v) return { name, type: A.STRING, s: new TextEncoder().encode(v.s) };
  return { name, type: A.TENSOR, t: tensorProto('', v.t) };
}

function nodeProto(n: NodeRecord): onnx.onnx.INodeProto {
  return {
    name: n.name,
    opType: n.op,
    input: n.inputs.map((t) => (t ? t.name : '')),
    output: n.outputs.map((t) => t.name),
    attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
  };
}

/**
 * Shapes of the computed Conv operands (data and weight), so that a provider-specific pass on the serialised model can read
 * them (graph/nchwc.ts: CPU sessions run such Convs on ORT's NCHWc kernels). Graph inputs and initializers carry their own.
 */
function convValueInfo(g: GraphCore): onnx.onnx.IValueInfoProto[] {
  const declared = new Set([...g.inputs.map((t) => t.name), ...g.initializers.keys()]);
  const seen = new Set<string>();
  const out: onnx.onnx.IValueInfoProto[] = [];
  for (const n of g.nodes) {
    if (n.op !== 'Conv') continue;
    for (const t of n.inputs.slice(0, 2)) {
      if (!t || declared.has(t.name) || seen.has(t.name)) continue;
      seen.add(t.name);
      out.push(valueInfo(t));
    }
  }
  return out;
}

/** The GraphProto alone (also usable as a Loop body by a caller that builds one). */
export function graphProto(g: GraphCore): onnx.onnx.IGraphProto {
  return {
    name: g.graphName,
    node: g.nodes.map(nodeProto),
    input: g.inputs.map(valueInfo),
    output: g.outputs.map(valueInfo),
    valueInfo: convValueInfo(g),
    initializer: [...g.initializers].map(([name, c]) => tensorProto(name, c)),
  };
}

export function modelProto(g: GraphCore, opset = DEFAULT_OPSET): Uint8Array {
  const model = P.ModelProto.create({
    irVersion: 8,
    producerName: 'cohort',
    opsetImport: [{ domain: '', version: opset }],
    graph: graphProto(g),
  });
  return P.ModelProto.encode(model).finish();
}

/** The graph layer: GraphBuilder (static-shape ONNX opset-18 graphs) and its value types. */
export { GraphBuilder } from './builder.ts';
export { GraphCore } from './core.ts';
export type { DType, Tensor, AttrValue, Attrs, ConstTensor, NodeRecord } from './types.ts';
export type { GemmOpts } from './ops/linalg.ts';
export type { SliceSpec } from './ops/shape-ops.ts';
export { graphProto, tensorProto, DEFAULT_OPSET } from './proto.ts';
export type { ConvOpts, ConvTransposeOpts, ConvGeom } from './ops/conv.ts';
export type { PoolOpts, PoolGeom } from './ops/pool.ts';
export type { BatchNormOpts, BatchNormResult } from './ops/norm.ts';

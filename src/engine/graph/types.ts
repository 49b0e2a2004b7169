/**
 * Core value types of the graph layer: tensors with static shapes, node attributes and the recorded node list
 * that both serialisation (proto.ts) and reverse-mode autodiff (../autodiff) read.
 */
export type DType = 'float32' | 'int64' | 'int32' | 'bool';

/** A value in the graph. Shapes are static: every dimension is a known positive integer (rank 0 = scalar). */
export interface Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** ONNX attribute values, tagged so that `1` as a float and `1` as an int serialise differently. */
export type AttrValue =
  | { readonly i: number }
  | { readonly f: number }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly s: string }
  | { readonly t: ConstTensor };

export type Attrs = Readonly<Record<string, AttrValue>>;

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

/** Raw tensor contents (initializers and tensor attributes). */
export interface ConstTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** One ONNX node as recorded by the builder. `meta` carries op-specific facts the backward rule needs. */
export interface NodeRecord {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly (Tensor | null)[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Attrs;
  readonly meta?: Readonly<Record<string, unknown>>;
}

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Readonly<Record<DType, number>> = { float32: 1, int32: 6, int64: 7, bool: 9 };

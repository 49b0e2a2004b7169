/** Run a GraphBuilder graph in a real onnxruntime-node session (single thread, no spinning: stable on 2 vCPUs). */
import * as ort from 'onnxruntime-node';
import type { GraphBuilder } from '../../../src/engine/graph/index.ts';

export interface Feed { data: Float32Array | BigInt64Array; shape: readonly number[] }

export async function session(g: GraphBuilder): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(g.toModelProto(), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
}

export async function run(s: ort.InferenceSession, feeds: Readonly<Record<string, Feed>>): Promise<Record<string, Float32Array>> {
  const inputs: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) {
    inputs[k] = v.data instanceof BigInt64Array ? new ort.Tensor('int64', v.data, [...v.shape]) : new ort.Tensor('float32', v.data, [...v.shape]);
  }
  const out = await s.run(inputs);
  const res: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(out)) res[k] = v.data as Float32Array;
  return res;
}

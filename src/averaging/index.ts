/**
 * Decentralised averaging: pure state machines over one transport interface (types.ts), the same code in the simulator and over libp2p.
 *   createNode(algorithm, transport, learner, config, settings)   D-PSGD, push-sum/SGP, Epidemic Learning, gossip learning, CHOCO-SGD
 *   makeCodec(name) / ErrorFeedback                               f64, f32, fp16, int8 (stochastic rounding), top-k
 *   encodeMessage / decodeMessage / checkHeader                   the wire format and its checks
 *   metropolisWeights, secondEigenvalueModulus, consensusDistance mixing matrices and measures
 *   centralisedBaseline, localOnlyBaseline, fedAvgBaseline        BASELINES for comparison only
 */
export * from './types.ts';
export * from './compression.ts';
export * from './message.ts';
export * from './mixing.ts';
export * from './node.ts';
export * from './factory.ts';
export * from './baselines.ts';
export * from './robust.ts';
export { DpsgdNode } from './dpsgd.ts';
export { PushSumNode } from './pushsum.ts';
export { EpidemicNode } from './epidemic.ts';
export { GossipNode } from './gossip.ts';
export { ChocoNode } from './choco.ts';

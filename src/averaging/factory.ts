/**
 * One entry point for every rule: createNode(algorithm, transport, learner, config, settings).
 * Settings are those of the scenario manifest's `averaging` block (fanout, s, gamma); defaults follow the papers' usual values.
 */
import { CohortError } from '../util/errors.ts';
import { ChocoNode } from './choco.ts';
import { DpsgdNode } from './dpsgd.ts';
import { EpidemicNode } from './epidemic.ts';
import { GossipNode } from './gossip.ts';
import { ALGORITHMS, type AlgorithmName, type AveragingNode, type NodeConfig } from './node.ts';
import { PushSumNode } from './pushsum.ts';
import { aggregatorConflict } from './robust.ts';
import type { AveragingTransport, LocalLearner } from './types.ts';
import { SecureDpsgdNode, epidemicPlan } from './secure/node.ts';
import type { SecureSession } from './secure/session.ts';

export interface AlgorithmSettings {
  /** push-sum: out-neighbours per push. */
  readonly fanout?: number;
  /** Epidemic Learning: peers per push. */
  readonly s?: number;
  /** Epidemic Learning: receivers drawn at random by each peer (default), or publicly from the scenario id (secure/receivers.ts). */
  readonly receivers?: 'random' | 'public';
  /** CHOCO: consensus step size. */
  readonly gamma?: number;
  /** Secure (masked) averaging, D-PSGD and Epidemic Learning (public receivers): the scenario's key setup shared by its peers (src/averaging/secure/). */
  readonly secure?: SecureSession;
}

export function createNode(
  algorithm: AlgorithmName,
  t: AveragingTransport,
  learner: LocalLearner,
  cfg: NodeConfig,
  settings: AlgorithmSettings = {},
): AveragingNode {
  if (cfg.codec === 'topk' && algorithm !== 'choco') {
    throw new CohortError('CODEC_NEEDS_CHOCO', `top-k compression sends a sparse difference and needs CHOCO's public copies; "${algorithm}" sends whole models`,
      'use --algorithm choco with top-k, or int8 / fp16 with the other rules');
  }
  const robust = cfg.robust && aggregatorConflict(algorithm, cfg.robust.aggregator);
  if (robust) throw new CohortError('AGGREGATOR_RULE', robust.message, robust.hint);
  if (settings.secure && algorithm !== 'dpsgd' && algorithm !== 'epidemic') {
    throw new CohortError('SECURE_NEEDS_DPSGD', `secure (masked) averaging is built for dpsgd and epidemic, not "${algorithm}"`, 'use dpsgd or epidemic with secure averaging (docs/privacy.md)');
  }
  switch (algorithm) {
    case 'dpsgd': return settings.secure ? SecureDpsgdNode.create(t, learner, cfg, settings.secure) : new DpsgdNode('dpsgd', t, learner, cfg);
    case 'pushsum': return new PushSumNode(t, learner, cfg, { fanout: settings.fanout ?? 1 });
    case 'epidemic': return settings.secure
      ? SecureDpsgdNode.create(t, learner, cfg, settings.secure, epidemicPlan(settings.secure, settings.s ?? 3, cfg.scenario))
      : new EpidemicNode(t, learner, cfg, { s: settings.s ?? 3, publicReceivers: settings.receivers === 'public' });
    case 'gossip': return new GossipNode(t, learner, cfg);
    case 'choco': return new ChocoNode(t, learner, cfg, { gamma: settings.gamma ?? 0.5 });
    default:
      throw new CohortError('UNKNOWN_ALGORITHM', `unknown averaging algorithm "${String(algorithm)}"`, `use one of ${ALGORITHMS.join(', ')}`);
  }
}

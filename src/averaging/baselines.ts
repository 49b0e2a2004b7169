/**
 * BASELINES, for comparison only — never the product (they need a server, or do not collaborate at all):
 *   centralisedBaseline  one model on the pooled data of every peer (the ceiling; impossible under data-protection rules)
 *   localOnlyBaseline    each peer trains alone (the floor)
 *   fedAvgBaseline       FedAvg (McMahan et al. 2017) with a server: x <- sum_k (n_k/n) LocalSteps_k(x); FedProx with `proximal`
 * Each returns a curve of the evaluated metric per round and the bytes a peer sends per round (f32 models).
 */
import type { LocalLearner } from './types.ts';
import { weightedMean } from './mixing.ts';

export type Evaluate = (model: Float32Array) => Promise<number>;

export interface BaselineResult {
  readonly name: 'centralised' | 'local_only' | 'fedavg';
  /** Metric after each round (index 0 = after round 1). */
  readonly curve: number[];
  readonly final: number;
  /** Bytes each peer sends per round (FedAvg: one model upload; the server's download is counted as the server's). */
  readonly bytesPerPeerPerRound: number;
  /** Local-only: the final metric of each peer. */
  readonly perPeer?: number[];
  /** The final model(s): the pooled model, FedAvg's global model, or one local model per peer (for per-site evaluation). */
  readonly models: Float32Array[];
}

export interface BaselineOptions {
  readonly rounds: number;
  /** Evaluate every k rounds (the curve repeats the last value in between). */
  readonly evalEvery?: number;
  readonly onRound?: (round: number, metric: number) => void;
}

function shouldEval(round: number, opts: BaselineOptions): boolean {
  const k = opts.evalEvery ?? 1;
  return (round + 1) % k === 0 || round === opts.rounds - 1;
}

export async function centralisedBaseline(pooled: LocalLearner, evaluate: Evaluate, opts: BaselineOptions): Promise<BaselineResult> {
  const curve: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    await pooled.train();
    const m = shouldEval(r, opts) ? await evaluate(pooled.getParameters()) : (curve.at(-1) ?? Number.NaN);
    curve.push(m);
    opts.onRound?.(r, m);
  }
  return { name: 'centralised', curve, final: curve.at(-1) ?? Number.NaN, bytesPerPeerPerRound: 0, models: [pooled.getParameters()] };
}

export async function localOnlyBaseline(learners: readonly LocalLearner[], evaluate: Evaluate, opts: BaselineOptions): Promise<BaselineResult> {
  const curve: number[] = [];
  let perPeer: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    for (const l of learners) await l.train();
    if (shouldEval(r, opts)) {
      perPeer = [];
      for (const l of learners) perPeer.push(await evaluate(l.getParameters()));
    }
    const m = perPeer.reduce((a, b) => a + b, 0) / perPeer.length;
    curve.push(m);
    opts.onRound?.(r, m);
  }
  return { name: 'local_only', curve, final: curve.at(-1) ?? Number.NaN, bytesPerPeerPerRound: 0, perPeer, models: learners.map((l) => l.getParameters()) };
}

export async function fedAvgBaseline(
  learners: readonly LocalLearner[],
  evaluate: Evaluate,
  opts: BaselineOptions & { readonly proximal?: boolean },
): Promise<BaselineResult> {
  let global = learners[0]!.getParameters();
  const weights = learners.map((l) => l.sampleCount);
  const curve: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const models: Float32Array[] = [];
    for (const l of learners) {
      l.setParameters(global);
      if (opts.proximal) l.setProximalAnchor?.(global);
      await l.train();
      models.push(l.getParameters());
    }
    global = Float32Array.from(weightedMean(models, weights));
    const m = shouldEval(r, opts) ? await evaluate(global) : (curve.at(-1) ?? Number.NaN);
    curve.push(m);
    opts.onRound?.(r, m);
  }
  return { name: 'fedavg', curve, final: curve.at(-1) ?? Number.NaN, bytesPerPeerPerRound: 4 * global.length, models: [global] };
}

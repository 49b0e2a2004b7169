/**
 * The attack suite (issue 11): what a Byzantine roster member sends instead of its honest model. Used by the simulator (an
 * omniscient adversary: it reads the honest peers' current models) and by a test-only adversarial peer over real libp2p (it knows
 * only its own model). An attack is a rewrite of the attacker's outgoing exchange messages (attackTransport), plus, for data
 * poisoning, a change to its training data (poisonLabels).
 *
 *   sign-flip     -x_a                                   (x_a: the model the attacker would honestly have sent)
 *   scaling       1000 x_a
 *   gaussian      x_a + N(0, sigma^2) per coordinate (sigma 10)
 *   alie          mu - z sigma, coordinate-wise over the target and its honest neighbours ("a little is enough", Baruch et al. 2019):
 *                 z = Phi^-1((n - s) / n), s = floor(n/2 + 1) - f  (n peers, f Byzantine)
 *   ipm           x_t - eps (mean_j x_j - x_t) over the target t and its honest neighbours j: against the honest update (eps 0.5)
 *   dissensus     x_t - eps sum_{j honest} W_tj (x_j - x_t) / sum_{b Byzantine} W_tb (topology-aware: cancels and reverses the
 *                 target's pull towards its honest neighbours; eps 1.5; ClippedGossip's attack)
 *   label-flip    trains honestly on flipped labels (class c -> C-1-c): data poisoning, the message is its real model
 *   free-ride     re-sends the first model it ever sent (never contributes training)
 *   nan           a model full of NaN (refused by every peer's checks: counted as non-finite)
 *   wrong-layout  a model under another layout hash (refused: counted as wrong-layout)
 */
import { makeCodec, type CodecOptions } from '../../averaging/compression.ts';
import type { AveragingMessage, AveragingTransport, PeerId } from '../../averaging/types.ts';
import type { SampleSet } from '../../data/samples.ts';
import { CohortError } from '../../util/errors.ts';
import { Rng } from '../../util/random.ts';
import { normalQuantile } from '../../util/stats.ts';

export type AttackName = 'sign-flip' | 'scaling' | 'gaussian' | 'alie' | 'ipm' | 'dissensus' | 'label-flip' | 'free-ride' | 'nan' | 'wrong-layout';
export const ATTACKS: readonly AttackName[] = ['sign-flip', 'scaling', 'gaussian', 'alie', 'ipm', 'dissensus', 'label-flip', 'free-ride', 'nan', 'wrong-layout'];
/** Attacks that need the honest peers' models (the simulator's omniscient adversary). */
export const OMNISCIENT: readonly AttackName[] = ['alie', 'ipm', 'dissensus'];

export const ATTACK_DEFAULTS = { scale: 1000, sigma: 10, ipmEpsilon: 0.5, dissensusEpsilon: 1.5 } as const;

export function parseAttack(name: string): AttackName {
  if (!(ATTACKS as readonly string[]).includes(name)) {
    throw new CohortError('BAD_FLAG', `unknown attack "${name}"`, `use one of ${ATTACKS.join(', ')}`);
  }
  return name as AttackName;
}

/** A Byzantine fraction must lie in [0, 0.5): an honest majority is what any robust aggregator needs. */
export function checkFraction(f: number): number {
  if (!Number.isFinite(f) || f < 0 || f >= 0.5) {
    throw new CohortError('BAD_FLAG', `--byzantine ${f} is outside [0, 0.5)`, 'give the share of Byzantine peers, e.g. 0.1 (robust aggregation needs an honest majority)');
  }
  return f;
}

/** ALIE's z for n peers of which f are Byzantine (Baruch et al. 2019): Phi^-1((n - s) / n), s = floor(n/2 + 1) - f. */
export function alieZ(n: number, f: number): number {
  const s = Math.floor(n / 2 + 1) - f;
  return normalQuantile(Math.min(1 - 1e-9, Math.max(1e-9, (n - s) / n)));
}

/** One neighbour of the target as the adversary sees it. */
export interface ViewNeighbour {
  readonly model: Float32Array;
  readonly byzantine: boolean;
  /** The target's mixing weight for this neighbour (W_tj). */
  readonly weight: number;
}

/** What an omniscient adversary can read (the simulator provides it; a real adversarial peer has none). */
export interface AttackView {
  /** The recipient's current model. */
  target(to: PeerId): Float32Array | undefined;
  /** The recipient's neighbours (or, for rules without a graph, every other peer) with their models. */
  neighbours(to: PeerId): readonly ViewNeighbour[];
  readonly peers: number;
  readonly byzantine: number;
}

export interface AttackOptions {
  readonly scale?: number;
  readonly sigma?: number;
  readonly epsilon?: number;
  readonly z?: number;
}

/** The model the attacker sends to `to` instead of `own`. */
export function craftModel(name: AttackName, own: Float32Array, to: PeerId, view: AttackView | undefined, rng: Rng, o: AttackOptions = {}): Float32Array {
  const d = own.length;
  switch (name) {
    case 'sign-flip': return Float32Array.from(own, (v) => -v);
    case 'scaling': return Float32Array.from(own, (v) => v * (o.scale ?? ATTACK_DEFAULTS.scale));
    case 'gaussian': { const s = o.sigma ?? ATTACK_DEFAULTS.sigma; return Float32Array.from(own, (v) => v + s * rng.normal()); }
    case 'nan': return new Float32Array(d).fill(Number.NaN);
    case 'label-flip': case 'free-ride': case 'wrong-layout': return own;
    default: break;
  }
  const t = view?.target(to);
  if (!view || !t) return own;       // no view of the target (a real peer, or it left): send the honest model
  const honest = view.neighbours(to).filter((n) => !n.byzantine);
  if (name === 'alie') {
    const ms = [t, ...honest.map((n) => n.model)];
    const z = o.z ?? alieZ(view.peers, view.byzantine);
    const out = new Float32Array(d);
    for (let i = 0; i < d; i++) {
      let mu = 0;
      for (const m of ms) mu += m[i]!;
      mu /= ms.length;
      let v = 0;
      for (const m of ms) v += (m[i]! - mu) ** 2;
      const sd = ms.length > 1 ? Math.sqrt(v / (ms.length - 1)) : 0;
      out[i] = mu - z * sd;
    }
    return out;
  }
  if (name === 'ipm') {
    const eps = o.epsilon ?? ATTACK_DEFAULTS.ipmEpsilon;
    const out = Float32Array.from(t);
    if (!honest.length) return out;
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (const n of honest) s += n.model[i]! - t[i]!;
      out[i] = t[i]! - (eps * s) / honest.length;
    }
    return out;
  }
  // dissensus
  const eps = o.epsilon ?? ATTACK_DEFAULTS.dissensusEpsilon;
  const byzWeight = view.neighbours(to).filter((n) => n.byzantine).reduce((a, n) => a + n.weight, 0) || 1;
  const out = Float32Array.from(t);
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (const n of honest) s += n.weight * (n.model[i]! - t[i]!);
    out[i] = t[i]! - (eps * s) / byzWeight;
  }
  return out;
}

/** Counters of what an adversary sent. */
export interface AttackStats {
  crafted: number;
}

/**
 * The attacker's transport: every exchange model it sends is decoded, replaced by the attack's model for that recipient and
 * re-encoded with the same codec (pull replies too: a joining peer would adopt them). Everything else passes unchanged.
 */
export function attackTransport(inner: AveragingTransport, name: AttackName, o: {
  /** Values in the model (the codecs need it to decode). */
  length: number; view?: AttackView; seed: number; codecOptions?: CodecOptions; options?: AttackOptions; stats?: AttackStats;
}): AveragingTransport {
  const rng = new Rng(o.seed ^ 0xbad);
  let first: Float32Array | null = null;
  const rewrite = (to: PeerId, msg: AveragingMessage): AveragingMessage => {
    if (msg.kind !== 'model' || name === 'label-flip') return msg;
    if (name === 'wrong-layout') return { ...msg, layoutHash: `${msg.layoutHash}-forged` };
    const codec = makeCodec(msg.codec as Parameters<typeof makeCodec>[0], o.codecOptions);
    // the sender's own model; CHOCO-style differences are not attacked here (robust aggregation refuses CHOCO anyway)
    let own: Float32Array;
    try { own = Float32Array.from(codec.decode(msg.payload, o.length)); } catch { return msg; }
    if (name === 'free-ride') { first ??= own.slice(); own = first; }
    const crafted = name === 'free-ride' ? own : craftModel(name, own, to, o.view, rng, o.options);
    if (o.stats) o.stats.crafted++;
    return { ...msg, payload: codec.encode(crafted, rng) };
  };
  return {
    get self() { return inner.self; },
    neighbours: () => inner.neighbours(),
    peers: () => inner.peers(),
    send: (to, msg) => inner.send(to, rewrite(to, msg)),
    onMessage: (h) => inner.onMessage(h),
    now: () => inner.now(),
    setTimer: (ms, cb) => inner.setTimer(ms, cb),
    clearTimer: (id) => inner.clearTimer(id),
    computeDelay: (steps) => inner.computeDelay(steps),
  };
}

/** Data poisoning: every label c becomes C-1-c (classification); survival: every event indicator flipped. */
export function poisonLabels(set: SampleSet, classes: number): SampleSet {
  const label = set.targets['label'];
  if (label) return { ...set, targets: { ...set.targets, label: { shape: label.shape, data: Float32Array.from(label.data, (c) => classes - 1 - c) } } };
  const event = set.targets['event'];
  if (event) return { ...set, targets: { ...set.targets, event: { shape: event.shape, data: Float32Array.from(event.data, (e) => 1 - e) } } };
  throw new CohortError('ATTACK_LABELS', 'label flipping needs a "label" (classification) or "event" (survival) target', 'pick another attack for this task');
}

/** The Byzantine peers: round(fraction * n) of them, drawn with the seed (never peer 0, whose view the tests often read). */
export function pickByzantine(n: number, fraction: number, seed: number): number[] {
  const k = Math.round(fraction * n);
  if (k === 0) return [];
  return new Rng(seed ^ 0xb12).sample(Array.from({ length: n - 1 }, (_, i) => i + 1), k).sort((a, b) => a - b);
}

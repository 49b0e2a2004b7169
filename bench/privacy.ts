/**
 * `cohort bench privacy`: secure (masked) averaging and DP-SGD, measured (docs/privacy.md).
 *
 * exactness  D-PSGD with masking, no training (the models are pure averaging state, 530 values = the WDBC MLP's size, N(0,1)),
 *            random 4-regular graph, 8 and 100 peers, 0% / 10% / 30% of the peers killed in round 2 after sending to half of their
 *            receivers; every receiver's decoded masked sum (dropped senders' masks removed) against the plain float64 sum
 *            sum_k W_jk x_k^r of the same senders' models: max |masked - plain| / max |plain| over all sums of 6 rounds. Also:
 *            dropped senders recovered, rounds not mixed (a receiver left with < 2 live senders does not mix: by design), and
 *            the survivors' final models vs plain D-PSGD's (they differ where a receiver did not mix).
 * cost       the same runs: bytes per peer per round over the 6 rounds (masked models + the one-time recovery requests and shares
 *            of the dropped peers, so the kill round weighs 1/6) vs plain f32 D-PSGD, the
 *            one-time key setup (announcements + sealed Shamir shares: bytes per peer, wall ms for all peers in one process), and
 *            the wall time of the rounds vs plain (median of 3 interleaved runs at 8 peers, one run at 100).
 * utility    WDBC, DP rows from scenarios/wdbc-dp.json (secure averaging on; clip, batch, lr chosen on tuning seeds 101-103 by
 *            bench/privacy-tune.ts), no-DP rows from the same scenario and from wdbc-secure.json; 8 and 100 peers, epsilon in {1, 3, 8, inf}, seeds 1..5:
 *            final accuracy (mean over peers) with a 95% t interval, epsilon actually spent (max over peers), noise multipliers.
 * tcga       Fed-TCGA-BRCA (6 regions): discrete-time hazard at epsilon 1/3/8/inf + the non-private Cox reference (bench/privacy-tcga.ts;
 *            DP-SGD stays refused for the Cox loss: not a sum of per-patient terms). Rows with task "tcga" and the file's "tcga"
 *            field are kept by a run without this part.
 * Knobs: COHORT_BENCH_SEEDS=N, COHORT_BENCH_UTILITY=8:5,100:2 (peers:seeds), COHORT_BENCH_ROUNDS=R (utility), COHORT_BENCH_DP_SCENARIO=path, COHORT_BENCH_PARTS=exactness,utility (a run of one part keeps the
 * other part's rows from bench/results/privacy.json, with their measured_at). --quick: 2 seeds, 8 rounds.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { median, type BenchSuite } from './suite.ts';
import { simulate } from '../src/sim/simulate.ts';
import { VectorLearner } from '../src/sim/learners.ts';
import { SecureSession } from '../src/averaging/secure/session.ts';
import { SECURE_CODEC, type SecureDpsgdNode } from '../src/averaging/secure/node.ts';
import type { AveragingMessage, AveragingTransport } from '../src/averaging/types.ts';
import { wireSize } from '../src/averaging/message.ts';
import { loadManifest } from '../src/scenario/manifest.ts';
import { runScenarioSim } from '../src/sim/run.ts';
import { releaseSessions } from '../src/engine/index.ts';
import { Rng } from '../src/util/random.ts';
import { tInterval } from '../src/util/stats.ts';
import { intervalPlot } from '../src/util/plot.ts';
import { TCGA_NOTE, tcgaUtility } from './privacy-tcga.ts';

const P = 530;
const ROUNDS = 6;
const KILL_ROUND = 2;
const ROUND_MS = 100;

/** Peers in `victims` die in KILL_ROUND after sending their masked (or plain) model to half of their receivers. A dead peer's
 * node still runs (muted) and counts what it tries to send in its stats: `unsent` collects those bytes, which never reach the
 * wire, so that the cost rows count only what was sent (plain and secure alike). */
function killing(victims: ReadonlySet<number>, unsent: { bytes: number }) {
  return (i: number, t: AveragingTransport): AveragingTransport => {
    if (!victims.has(i)) return t;
    let sent = 0;
    return {
      self: t.self, neighbours: () => t.neighbours(), peers: () => t.peers(), now: () => t.now(), setTimer: (ms, cb) => t.setTimer(ms, cb),
      clearTimer: (id) => t.clearTimer(id), computeDelay: (s) => t.computeDelay(s), onMessage: (h) => t.onMessage(h),
      send: (to: string, msg: AveragingMessage) => {
        const start = KILL_ROUND * ROUND_MS;
        if (t.now() < start) return t.send(to, msg);
        const model = msg.kind === 'model' && (msg.codec === SECURE_CODEC.model || msg.codec === 'f32') && msg.purpose === 'exchange';
        if (t.now() < start + 1 && model && sent < 2) { sent++; t.send(to, msg); } else unsent.bytes += wireSize(msg);
      },
    };
  };
}

interface ExactRow { peers: number; killed_fraction: number; killed: number; sums_checked: number; max_rel_error: number; models_vs_plain_rel_diff: number; recovered: number; rounds_not_mixed: number;
  bytes_per_peer_round_plain: number; bytes_per_peer_round_secure: number; bytes_ratio: number; setup_bytes_per_peer: number; setup_ms: number;
  wall_ms_plain: number; wall_ms_secure: number; wall_ratio: number; shares_refused: number; share_requests: number; recoveries_widened: number;
  holders: number; threshold: number; holders_short: number }

async function exactness(peers: number, fraction: number, reps: number): Promise<ExactRow> {
  const rng = new Rng(1000 + peers);
  const xs = Array.from({ length: peers }, () => Float32Array.from({ length: P }, () => rng.normal()));
  const killed = Math.round(fraction * peers);
  const victims = new Set(new Rng(7 + peers).sample(Array.from({ length: peers - 1 }, (_, i) => i + 1), killed));
  // masked sum vs plain sum, per receiver and round: the decoded sum against sum_k W_jk x_k^r in float64 over the senders received
  let sumErr = 0, sumScale = 0, sums = 0;
  const run = async (secure: boolean) => {
    const session = secure ? new SecureSession('bench-privacy', 5) : undefined;
    const snaps = new Map<string, Float32Array>();
    const onNodes = (nodes: readonly unknown[]) => {
      if (!session) return;
      for (const n of nodes as SecureDpsgdNode[]) {
        n.onSnapshot = (r, x) => snaps.set(`${r}|${n.peer}`, x);
        n.onSum = (r, s, senders) => {
          const deg = (p: string) => session.neighbours.get(p)!.length;
          for (let i = 0; i < P; i++) {
            let plain = 0;
            for (const k of senders) plain += snaps.get(`${r}|${k}`)![i]! / (1 + Math.max(deg(n.peer), deg(k)));
            sumErr = Math.max(sumErr, Math.abs(s[i]! - plain)); sumScale = Math.max(sumScale, Math.abs(plain));
          }
          sums++;
        };
      }
    };
    const t0 = performance.now();
    const unsent = { bytes: 0 };
    const res = await simulate({
      algorithm: 'dpsgd', seed: 5, learners: xs.map((x) => new VectorLearner(x)),
      network: { topology: { kind: 'random-regular', degree: 4 }, link: { latencyMs: 5, bandwidthBytesPerMs: 1e5, loss: 0 }, stepMs: 1 },
      node: { scenario: 'bench-privacy', layoutHash: 'lh', rounds: ROUNDS, roundMs: ROUND_MS, deadlineMs: 60, codec: 'f32', weighting: 'uniform', train: false, proximal: false },
      ...(session ? { settings: { secure: session } } : {}),
      transportFor: killing(victims, unsent), onNodes,
    });
    return { res, session, ms: performance.now() - t0, unsent: unsent.bytes };
  };
  // wall time of the rounds (the one-time key setup reported apart), median of `reps` interleaved runs
  const walls: { plain: number[]; secure: number[] } = { plain: [], secure: [] };
  let plain = await run(false), sec = await run(true);
  const setupMs = [sec.session!.setupMs];
  walls.plain.push(plain.ms); walls.secure.push(sec.ms - sec.session!.setupMs);
  for (let k = 1; k < reps; k++) {
    const a = await run(false); const b = await run(true);
    walls.plain.push(a.ms); walls.secure.push(b.ms - b.session!.setupMs); setupMs.push(b.session!.setupMs); plain = a; sec = b;
  }
  // survivors' final models vs plain D-PSGD's (differ also where a receiver was left with < 2 senders: it does not mix)
  let err = 0, scale = 0;
  sec.res.finalModels.forEach((m, k) => {
    if (victims.has(sec.res.finalPeers[k]!)) return;
    const p = plain.res.finalModels[k]!;
    for (let i = 0; i < P; i++) { err = Math.max(err, Math.abs(m[i]! - p[i]!)); scale = Math.max(scale, Math.abs(p[i]!)); }
  });
  const st = sec.res.nodes.map((n) => (n as SecureDpsgdNode).secure);
  const bytes = (r: typeof plain) => (r.res.nodes.reduce((a, n) => a + n.stats.bytesSent, 0) - r.unsent) / peers / ROUNDS;
  const bp = bytes(plain), bs = bytes(sec);
  return {
    peers, killed_fraction: fraction, killed, sums_checked: sums, max_rel_error: sumErr / sumScale, models_vs_plain_rel_diff: err / scale,
    recovered: st.reduce((a, s) => a + s.recovered, 0),
    // survivors' rounds without a mix (a receiver left with < 2 live senders; the dead peers, still running muted, are left out)
    rounds_not_mixed: st.reduce((a, s, i) => a + (victims.has(i) ? 0 : s.roundsNotMixed), 0),
    bytes_per_peer_round_plain: Math.round(bp), bytes_per_peer_round_secure: Math.round(bs), bytes_ratio: Math.round((bs / bp) * 1000) / 1000,
    setup_bytes_per_peer: Math.round(sec.session!.setupBytes / peers), setup_ms: Math.round(median(setupMs)),
    wall_ms_plain: Math.round(median(walls.plain)), wall_ms_secure: Math.round(median(walls.secure)),
    wall_ratio: Math.round((median(walls.secure) / median(walls.plain)) * 100) / 100,
    shares_refused: st.reduce((a, s) => a + s.sharesRefused, 0),
    // recovery asks ceil(1.5 t) holders first (src/averaging/secure/holders.ts); widened: recoveries that had to ask the rest
    // (survivors only: a killed peer's muted node asks too, but nothing it sends reaches the wire)
    share_requests: st.reduce((a, s, i) => a + (victims.has(i) ? 0 : s.shareRequests), 0),
    recoveries_widened: st.reduce((a, s, i) => a + (victims.has(i) ? 0 : s.recoveryWidened), 0),
    // SecAgg+-style holder sets (holders.ts): h holders per dealer, threshold t; dropped senders not rebuilt for want of holders
    holders: sec.session!.holderPlan?.holders ?? 0, threshold: sec.session!.threshold,
    holders_short: st.reduce((a, s, i) => a + (victims.has(i) ? 0 : s.holdersShort), 0),
  };
}

interface UtilityRow { task: string; scenario: string; peers: number; epsilon: number | 'inf'; seeds: number; accuracy_mean: number; accuracy_lo: number; accuracy_hi: number;
  per_seed: number[]; epsilon_spent_max: number | null; noise_multiplier_min: number | null; noise_multiplier_max: number | null; secure: boolean }

/** COHORT_BENCH_EPSILONS=1,3,8,inf (a subset lets several processes share the rows of one peer count). */
const EPSILONS = (process.env.COHORT_BENCH_EPSILONS ?? '1,3,8,inf').split(',').map((e) => (e === 'inf' ? Infinity : Number(e)));

/**
 * accuracy vs epsilon from ALL the WDBC utility rows (this run's and the kept ones): one group per (peers, DP scenario), the
 * DP scenario's rows at epsilon 1, 3, 8 and without DP, and the standard non-private scenario wdbc-secure.json at those peers.
 */
function utilityPlot(all: readonly UtilityRow[]): string {
  const reference = 'wdbc-secure.json';
  const dpScenarios = [...new Set(all.filter((u) => u.epsilon !== 'inf').map((u) => `${u.peers}|${u.scenario}`))]
    .sort((a, b) => Number(a.split('|')[0]) - Number(b.split('|')[0]));
  const cats = ['eps 1', 'eps 3', 'eps 8', 'no DP (same settings)', 'no DP (wdbc-secure)'];
  const value = (u: UtilityRow | undefined) => (u && Number.isFinite(u.accuracy_lo) ? { mean: u.accuracy_mean, lo: u.accuracy_lo, hi: u.accuracy_hi } : null);
  const groups = dpScenarios.map((key) => {
    const [peers, scenario] = [Number(key.split('|')[0]), key.split('|')[1]!];
    const at = (sc: string, e: number | 'inf') => all.find((u) => u.peers === peers && u.scenario === sc && u.epsilon === e);
    const seeds = at(scenario, 8)?.seeds ?? at(scenario, 'inf')?.seeds;
    return { name: `${peers} peers, ${scenario.replace(/\.json$/, '')} (${seeds} seeds)`, values: [value(at(scenario, 1)), value(at(scenario, 3)), value(at(scenario, 8)), value(at(scenario, 'inf')), value(at(reference, 'inf'))] };
  });
  return intervalPlot({
    title: 'WDBC, D-PSGD + secure averaging: accuracy vs epsilon (delta 1e-5; 95% t over seeds)', yLabel: 'accuracy (mean over peers)',
    categories: cats, groups,
  });
}

const suite: BenchSuite = {
  name: 'privacy',
  description: 'secure averaging exactness and cost with peers killed mid-round; DP-SGD utility vs epsilon',
  async run(opts) {
    const parts = (process.env.COHORT_BENCH_PARTS ?? 'exactness,utility,tcga').split(',');
    const seeds = Number(process.env.COHORT_BENCH_SEEDS ?? (opts.quick ? 2 : 5));
    const rounds = process.env.COHORT_BENCH_ROUNDS ? Number(process.env.COHORT_BENCH_ROUNDS) : opts.quick ? 8 : undefined;
    const rows: Record<string, unknown>[] = [];
    const exact: ExactRow[] = [];
    if (parts.includes('exactness')) {
      for (const peers of [8, 100]) {
        for (const f of [0, 0.1, 0.3]) {
          const r = await exactness(peers, f, peers > 10 || opts.quick ? 1 : 3);
          exact.push(r);
          rows.push({ part: 'exactness', ...r });
          if (opts.verbose) process.stderr.write(`exactness ${peers} peers, ${f * 100}% killed: rel err ${r.max_rel_error.toExponential(2)}, bytes x${r.bytes_ratio}\n`);
        }
      }
    }
    const utility: UtilityRow[] = [];
    const dpScenarioAt = new Map<number, string>();
    if (parts.includes('utility')) {
      // DP rows: the DP scenario (its clip, batch size and learning rate were chosen on tuning seeds 101-103 by
      // bench/privacy-tune.ts, never on the seeds reported here); no-DP rows: the same scenario without DP, and the standard
      // non-private scenario wdbc-secure.json (the reference the target is judged against: both are reported)
      // peers:seeds[:dp scenario] (COHORT_BENCH_UTILITY=8:5,100:5:scenarios/wdbc-dp-small.json): the DP scenario per peer count
      // (default COHORT_BENCH_DP_SCENARIO or scenarios/wdbc-dp.json); the final metric only is evaluated (evalEvery = rounds)
      const dpDefault = process.env.COHORT_BENCH_DP_SCENARIO ?? 'scenarios/wdbc-dp.json';
      const plan = (process.env.COHORT_BENCH_UTILITY ?? `8:${seeds},100:${seeds}`).split(',').map((x) => x.split(':'))
        .map(([p, n, sc]) => [Number(p), Number(n), sc ?? dpDefault] as [number, number, string]);
      for (const [peers, nSeeds, dpPath] of plan) {
        // COHORT_BENCH_REFERENCE=0: without the wdbc-secure.json row (e.g. when another process runs it)
        const reference: [string, number][] = process.env.COHORT_BENCH_REFERENCE === '0' ? [] : [['scenarios/wdbc-secure.json', Infinity]];
        const runs: [string, number][] = [...EPSILONS.map((e) => [dpPath, e] as [string, number]), ...reference];
        if (EPSILONS.some(Number.isFinite)) dpScenarioAt.set(peers, dpPath.replace(/^.*\//, ''));
        for (const [path, eps] of runs) {
          const m = loadManifest(path);
          const totalRounds = rounds ?? m.rounds.max;
          const acc: number[] = [], spent: number[] = [], sig: number[] = [];
          for (let s = 1; s <= nSeeds; s++) {
            const r = await runScenarioSim(m, { peers, seed: s, baselines: false, dpEpsilon: eps, rounds: totalRounds, evalEvery: totalRounds });
            acc.push(r.final.mean);
            if (r.privacy?.dp) { spent.push(r.privacy.dp.epsilon_spent); sig.push(r.privacy.dp.noise_multiplier.min, r.privacy.dp.noise_multiplier.max); }
            if (opts.verbose) process.stderr.write(`utility wdbc ${peers} peers eps ${eps} seed ${s}: ${r.final.mean.toFixed(4)}\n`);
          }
          const iv = tInterval(acc);
          const row: UtilityRow = {
            task: 'wdbc', scenario: path.replace(/^.*\//, ''), peers, epsilon: Number.isFinite(eps) ? eps : 'inf', seeds: nSeeds, accuracy_mean: iv.mean, accuracy_lo: iv.lo, accuracy_hi: iv.hi,
            per_seed: acc.map((a) => Math.round(a * 1e4) / 1e4), epsilon_spent_max: spent.length ? Math.max(...spent) : null,
            noise_multiplier_min: sig.length ? Math.min(...sig) : null, noise_multiplier_max: sig.length ? Math.max(...sig) : null, secure: true,
          };
          utility.push(row);
          rows.push({ part: 'utility', ...row });
        }
      }
      await releaseSessions();
    }
    // a run of some parts keeps the other parts' rows of the last results file (parts can then run one at a time), read just
    // before the suite writes it. WDBC utility: this run replaces the rows it measured (same peers, scenario, epsilon) and, at
    // its peer counts, the DP rows of any other DP scenario (one DP scenario per peer count); every other row stays (other
    // peer counts', other tasks', the rows of a process that ran other epsilons)
    if (parts.includes('tcga')) rows.push(...await tcgaUtility({ seeds, rounds, verbose: opts.verbose, resultsDir: opts.resultsDir }));
    const file = join(opts.resultsDir, 'privacy.json');
    let tcga = parts.includes('tcga') ? TCGA_NOTE : 'not run';
    if (existsSync(file)) {
      const old = JSON.parse(readFileSync(file, 'utf8')) as { rows?: Record<string, unknown>[]; measured_at?: string; tcga?: string };
      if (!parts.includes('tcga') && old.tcga) tcga = old.tcga;
      const measured = new Set(utility.map((u) => `${u.peers}|${u.scenario}|${u.epsilon}`));
      const superseded = (r: Record<string, unknown>) => measured.has(`${r.peers}|${r.scenario}|${r.epsilon}`)
        || (r.epsilon !== 'inf' && dpScenarioAt.has(Number(r.peers)) && dpScenarioAt.get(Number(r.peers)) !== r.scenario);
      const replaced = (r: Record<string, unknown>) => r.part === 'utility'
        ? r.task === 'tcga' ? parts.includes('tcga') : parts.includes('utility') && r.task === 'wdbc' && superseded(r)
        : parts.includes(String(r.part));
      for (const r of old.rows ?? []) if (!replaced(r)) rows.push({ ...r, measured_at: r.measured_at ?? old.measured_at });
    }
    if (parts.includes('utility')) {
      mkdirSync(opts.resultsDir, { recursive: true });
      writeFileSync(join(opts.resultsDir, 'privacy-utility.svg'), utilityPlot(rows.filter((r) => r.part === 'utility' && r.task === 'wdbc') as unknown as UtilityRow[]));
    }
    return { suite: 'privacy', rows, quick: opts.quick, parts_run: parts, tcga };
  },
};

export default suite;

/**
 * `cohort sim SCENARIO --peers N [--algorithm A[,B..]|all] [--alpha X] [--churn P] [--seed S] [--rounds R] [--codec C]
 *   [--learner engine|softmax] [--no-baselines] [--json] [--details] [--plot DIR] [--round-ms MS] [--deadline-ms MS] [--latency-ms MS]
 *   [--libp2p]`
 * Runs the scenario's averaging on N simulated peers (src/sim) with live progress; prints a table, or with --json exactly
 * {"algorithm","peers","rounds","final":{"mean","min","max","metric"},"baselines":{"centralised","local_only","fedavg"},
 *  "bytes_sent_per_peer","consensus_distance"} (an array of these for several algorithms; --details adds a "details" object);
 * D-PSGD and CHOCO on the virtual network add "late":{"missed_at_deadline","applied","in_flight_at_end","local_updates_late"}.
 * Runs with privacy settings (manifest `privacy`, --secure, --dp-epsilon E) add "privacy":{"secure","dp"} where dp is null or
 * {"epsilon_target","delta","clip","epsilon_spent","epsilon_spent_mean","noise_multiplier":{"min","max"},"steps_per_peer":{"min","max"}}
 * (docs/privacy.md).
 * Scenarios that split the data by a site column (data.split) add "per_site":[{"site","train","test","metric","local_only","fedavg",
 * "centralised"}] after "baselines".
 * `cohort sim --data FILE.csv (--label COL [--task regression] | --time COL --event COL) [--site-column COL] [--ignore COL,...]
 * [--peers N] ...` runs any table without a manifest (src/scenario/table-scenario.ts: default model and split; the table audit's
 * notes on stderr: identifier-like columns dropped, ignored columns, imputed counts, the feature list, leakage warnings);
 * its JSON always has "per_site" (with --site-column one entry per site and its own test set, otherwise one per peer on the
 * pooled test set) and, last, "table": {"features","identifiers","ignored","imputed","warnings"}.
 */
import type { Command } from 'commander';
import { ALGORITHMS, type AlgorithmName } from '../../averaging/node.ts';
import { CODEC_NAMES, type CodecName } from '../../averaging/compression.ts';
import { loadManifest, type ScenarioManifest } from '../../scenario/manifest.ts';
import { tableScenario, type TableAuditSummary } from '../../scenario/table-scenario.ts';
import { writeCurvePlots } from '../../sim/plots.ts';
import { runScenarioSim, type CurvePoint, type LearnerKind, type SimReport } from '../../sim/run.ts';
import { CohortError } from '../../util/errors.ts';
import { AGGREGATORS, type AggregatorName } from '../../averaging/robust.ts';
import { ATTACKS, checkFraction, parseAttack } from '../../sim/attacks/index.ts';
import { progressBar } from '../../util/progress.ts';

interface SimFlags {
  peers?: string; algorithm?: string; alpha?: string; churn?: string; seed?: string; rounds?: string; codec?: string;
  learner?: string; baselines?: boolean; json?: boolean; details?: boolean; plot?: string; libp2p?: boolean; roundMs?: string;
  deadlineMs?: string; latencyMs?: string; attack?: string; byzantine?: string; aggregator?: string; averagingOnly?: boolean;
  data?: string; label?: string; time?: string; event?: string; siteColumn?: string; ignore?: string; task?: string;
  dpEpsilon?: string; secure?: boolean;
}

/** The scenario file, or a manifest built from --data (the table's notes go to stderr; its audit goes into --json). */
function scenarioFor(file: string | undefined, f: SimFlags): { m: ScenarioManifest; fromTable: boolean; audit?: TableAuditSummary } {
  if (f.data === undefined) {
    if (f.label !== undefined || f.time !== undefined || f.event !== undefined || f.siteColumn !== undefined || f.ignore !== undefined || f.task !== undefined) {
      throw new CohortError('BAD_FLAG', '--label, --time, --event, --site-column, --ignore and --task go with --data FILE.csv', 'add --data, or drop them (a scenario file names its own columns)');
    }
    if (file === undefined) throw new CohortError('MISSING_ARGUMENT', 'cohort sim needs a scenario file or --data FILE.csv', 'e.g. cohort sim scenarios/tcga-brca.json, or cohort sim --data my.csv --label outcome');
    return { m: loadManifest(file), fromTable: false };
  }
  if (file !== undefined) throw new CohortError('BAD_FLAG', `give a scenario file (${file}) or --data, not both`, 'drop one of them');
  const peers = number('peers', f.peers, (n) => Number.isInteger(n) && n >= 2 && n <= 10_000, 'give an integer >= 2');
  const seed = number('seed', f.seed, (n) => Number.isInteger(n) && n >= 0, 'give a non-negative integer');
  if (f.task !== undefined && f.task !== 'classification' && f.task !== 'regression') {
    throw new CohortError('BAD_FLAG', `unknown --task "${f.task}"`, f.task === 'survival' ? 'survival tables take --time COL --event COL' : 'use classification or regression');
  }
  const ignore = (f.ignore ?? '').split(',').map((c) => c.trim()).filter(Boolean);
  const t = tableScenario({ data: f.data, label: f.label, time: f.time, event: f.event, siteColumn: f.siteColumn, peers, seed, ignore,
    task: f.task as 'classification' | 'regression' | undefined });
  for (const n of t.notes) process.stderr.write(`${n}\n`);
  return { m: t.manifest, fromTable: true, audit: t.audit };
}

function number(flag: string, v: string | undefined, check: (n: number) => boolean, hint: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new CohortError('BAD_FLAG', `--${flag} ${v} is not valid`, hint);
  return n;
}

function algorithms(v: string | undefined): (AlgorithmName | undefined)[] {
  if (v === undefined) return [undefined];
  const names = v === 'all' ? [...ALGORITHMS] : v.split(',').map((s) => s.trim());
  for (const a of names) {
    if (!ALGORITHMS.includes(a as AlgorithmName)) throw new CohortError('BAD_FLAG', `unknown algorithm "${a}"`, `use one of ${ALGORITHMS.join(', ')} or all`);
  }
  return names as AlgorithmName[];
}

export function publicJson(r: SimReport, details: boolean): Record<string, unknown> {
  const { details: d, ...rest } = r;
  return details ? { ...rest, details: d } : rest;
}

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description('simulate a scenario on N in-process peers (virtual network: latency, bandwidth, loss, churn) with baselines')
    .argument('[scenario]', 'scenario manifest (JSON), e.g. scenarios/wdbc-radiomics.json (or --data FILE.csv)')
    .option('--peers <n>', 'number of simulated peers')
    .option('--algorithm <a>', `averaging rule: ${ALGORITHMS.join(', ')}; several separated by commas, or all`)
    .option('--alpha <x>', 'Dirichlet label-skew alpha (smaller = more non-IID)')
    .option('--churn <p>', 'fraction of peers that leave at 1/3 of the run and come back at 2/3')
    .option('--seed <s>', 'seed (runs are deterministic for a seed)')
    .option('--rounds <r>', 'rounds (overrides the manifest)')
    .option('--codec <c>', `compression: ${CODEC_NAMES.join(', ')}`)
    .option('--learner <l>', 'engine (ONNX Trainer, default) or softmax (small TypeScript learner)')
    .option('--no-baselines', 'skip the centralised, local-only and FedAvg baselines')
    .option('--json', 'print JSON on stdout')
    .option('--details', 'with --json: add curves, partition and counters')
    .option('--plot <dir>', 'write SVG curves (metric vs round, vs bytes; consensus) into DIR')
    .option('--libp2p', 'run the rule over real libp2p peers on 127.0.0.1 (wall-clock rounds) instead of the virtual network')
    .option('--round-ms <ms>', 'round length in ms (virtual: overrides averaging.roundMs; with --libp2p: wall clock, default 400)')
    .option('--deadline-ms <ms>', 'deadline within each round in ms (default: averaging.deadlineMs, or 0.8 x the round)')
    .option('--latency-ms <ms>', 'one-way link latency of the virtual network in ms (overrides simulation.latencyMs)')
    .option('--averaging-only', 'no training: peers start from different random models and only average (consensus_start vs consensus_distance)')
    .option('--aggregator <a>', `robust aggregation at the mix: ${AGGREGATORS.join(', ')} (overrides averaging.aggregator)`)
    .option('--attack <name>', `Byzantine peers send crafted models: ${ATTACKS.join(', ')} (final is then over the honest peers; adds "attack")`)
    .option('--byzantine <fraction>', 'share of Byzantine peers with --attack, in [0, 0.5) (default 0.1)')
    .option('--data <file.csv>', 'run any table without a manifest (default model and split; with --label or --time/--event)')
    .option('--label <column>', 'with --data: the class column (classification)')
    .option('--time <column>', 'with --data: the follow-up time column (survival, with --event)')
    .option('--event <column>', 'with --data: the event column, 1 = event observed, 0 = censored (survival)')
    .option('--task <kind>', 'with --data --label: classification (default) or regression (a numeric label, metric r2)')
    .option('--ignore <columns>', 'with --data: comma-separated columns to leave out of the features (besides identifier-like ones)')
    .option('--site-column <column>', 'with --data: one peer per value of this column (natural split) instead of --peers')
    .option('--secure', 'secure (masked) averaging: no neighbour sees a peer\'s model, only the weighted sum (dpsgd)')
    .option('--dp-epsilon <e>', 'DP-SGD to this sample-level epsilon (delta and clip from privacy.dp, else 1e-5 and 1); inf: no DP')
    .action(async (file: string | undefined, f: SimFlags) => {
      const { m, fromTable, audit } = scenarioFor(file, f);
      const peers = number('peers', f.peers, (n) => Number.isInteger(n) && n >= 2 && n <= 10_000, 'give an integer >= 2');
      const alpha = number('alpha', f.alpha, (n) => n > 0, 'give a positive number, e.g. 0.5');
      const churn = number('churn', f.churn, (n) => n >= 0 && n < 1, 'give a fraction in [0, 1), e.g. 0.3');
      const seed = number('seed', f.seed, (n) => Number.isInteger(n) && n >= 0, 'give a non-negative integer');
      const rounds = number('rounds', f.rounds, (n) => Number.isInteger(n) && n >= 1, 'give a positive integer');
      if (f.codec !== undefined && !CODEC_NAMES.includes(f.codec as CodecName)) {
        throw new CohortError('BAD_FLAG', `unknown codec "${f.codec}"`, `use one of ${CODEC_NAMES.join(', ')}`);
      }
      if (f.learner !== undefined && f.learner !== 'engine' && f.learner !== 'softmax') {
        throw new CohortError('BAD_FLAG', `unknown learner "${f.learner}"`, 'use engine or softmax');
      }
      const roundMs = number('round-ms', f.roundMs, (n) => n >= 10, 'give at least 10 ms') ?? (f.libp2p ? 400 : undefined);
      const deadlineMs = number('deadline-ms', f.deadlineMs, (n) => n > 0, 'give a positive number of ms, at most the round length');
      const latencyMs = number('latency-ms', f.latencyMs, (n) => n >= 0, 'give a non-negative number of ms');
      if (latencyMs !== undefined && f.libp2p) {
        throw new CohortError('BAD_FLAG', '--latency-ms sets the virtual network\'s links; over --libp2p the latency is the loopback\'s', 'drop --latency-ms or --libp2p');
      }
      const dpEpsilon = f.dpEpsilon === undefined ? undefined : /^(inf|infinity)$/i.test(f.dpEpsilon) ? Infinity
        : number('dp-epsilon', f.dpEpsilon, (n) => n > 0, 'give a positive epsilon, e.g. 1, 3 or 8 (or inf for no DP)');
      if (f.aggregator !== undefined && !(AGGREGATORS as readonly string[]).includes(f.aggregator)) {
        throw new CohortError('BAD_FLAG', `unknown aggregator "${f.aggregator}"`, `use one of ${AGGREGATORS.join(', ')}`);
      }
      if (f.byzantine !== undefined && f.attack === undefined) throw new CohortError('BAD_FLAG', '--byzantine goes with --attack', 'add --attack NAME, e.g. --attack alie');
      const fraction = f.byzantine === undefined ? 0.1 : checkFraction(Number(f.byzantine));
      const attack = f.attack === undefined ? undefined : { name: parseAttack(f.attack), fraction };
      const aggregator = f.aggregator as AggregatorName | undefined;
      const runner = f.libp2p ? (await import('../../net/averaging-transport.ts')).runOnLoopback : undefined;
      const reports: SimReport[] = [];
      const curves: Record<string, CurvePoint[]> = {};
      for (const [k, algorithm] of algorithms(f.algorithm).entries()) {
        const total = rounds ?? m.rounds.max;
        const bar = progressBar({ total, label: `sim ${algorithm ?? m.averaging.algorithm}`, enabled: !f.json, fields: '{phase} {metric}' });
        const r = await runScenarioSim(m, {
          peers, algorithm, alpha, churn, seed, rounds, codec: f.codec as CodecName | undefined, learner: f.learner as LearnerKind | undefined,
          baselines: f.baselines !== false && k === 0, roundMs, deadlineMs, latencyMs, runner,
          perSite: fromTable, dpEpsilon, secure: f.secure, aggregator, attack, averagingOnly: f.averagingOnly,
        }, { onRound: (phase, round, _t, metric) => bar.update(round, { phase, metric: Number.isNaN(metric) ? '' : metric.toFixed(4) }) });
        bar.stop();
        reports.push(r);
        Object.assign(curves, r.details.curves);
        if (k > 0) reports[k] = { ...r, baselines: reports[0]!.baselines };
      }
      if (f.plot) {
        const files = writeCurvePlots(curves, reports[0]!.final.metric, f.plot);
        process.stderr.write(`wrote ${files.join(', ')}\n`);
      }
      if (f.json) {
        const out = reports.map((r) => ({ ...publicJson(r, Boolean(f.details)), ...(audit ? { table: audit } : {}) }));
        process.stdout.write(JSON.stringify(out.length === 1 ? out[0] : out) + '\n');
        return;
      }
      printTable(reports);
    });
}

function printTable(reports: readonly SimReport[]): void {
  const b = reports[0]!.baselines;
  const fmt = (v: number | null) => (v === null || Number.isNaN(v) ? '-' : v.toFixed(4));
  const rows = reports.map((r) => ({
    algorithm: r.algorithm, peers: r.peers, rounds: r.rounds, [`${r.final.metric} mean`]: fmt(r.final.mean), min: fmt(r.final.min), max: fmt(r.final.max),
    'KiB/peer': (r.bytes_sent_per_peer / 1024).toFixed(1), consensus: r.consensus_distance.toExponential(2),
  }));
  console.table(rows);
  console.table([{ baseline: 'centralised', value: fmt(b.centralised) }, { baseline: 'fedavg (server)', value: fmt(b.fedavg) }, { baseline: 'local-only', value: fmt(b.local_only) }]);
  const priv = reports[0]!.privacy;
  if (priv) {
    const dp = priv.dp;
    console.log(`privacy: ${priv.secure ? 'secure (masked) averaging' : 'plain averaging'}; ${dp
      ? `DP-SGD epsilon spent ${dp.epsilon_spent} (target ${dp.epsilon_target}, delta ${dp.delta}, clip ${dp.clip}, noise multiplier ${dp.noise_multiplier.min}-${dp.noise_multiplier.max})`
      : 'no differential privacy'}`);
  }
  const sites = reports[0]!.per_site;
  if (sites) {
    console.table(sites.map((s) => ({ site: s.site, train: s.train, test: s.test, [reports[0]!.algorithm]: fmt(s.metric), 'local-only': fmt(s.local_only),
      fedavg: fmt(s.fedavg), centralised: fmt(s.centralised) })));
  }
}

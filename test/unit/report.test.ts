/**
 * Report content (src/scenario/report.ts, issue 13.5): held-out n and 95% intervals beside each site's metric, AUC and balanced
 * accuracy beside accuracy, answers in time / late / declined, participants = peers that trained to the end, and a report that
 * says so (naming no model file) when the exporting peer holds no final model.
 */
import { describe, expect, it } from 'vitest';
import { delta, emptyView, merge, type ScenarioView, type SiteProgress } from '../../src/scenario/lifecycle.ts';
import { answersOf, convergenceSvg, finalParticipants, metricsJson, reportMarkdown, withInterval, type ReportInput } from '../../src/scenario/report.ts';
import { wilsonInterval } from '../../src/util/stats.ts';

const ans = (at: string, reason?: string) => ({ hash: 'h', at, sig: 'x', ...(reason ? { reason } : {}) });
const names = { a: 'site-a', b: 'site-b', c: 'site-c', d: 'site-d', e: 'site-e', f: 'site-f', g: 'site-g', r: 'site-r' };
const w16 = wilsonInterval(16, 17);
const w17 = wilsonInterval(17, 17);
const scores = (acc: { lo: number; hi: number }, value: number): SiteProgress['scores'] => ({
  accuracy: { value, lo: acc.lo, hi: acc.hi, method: 'wilson' },
  auc: { value: 0.99, lo: 0.95, hi: 1, method: 'bootstrap' },
  balancedAccuracy: { value: 0.93, lo: 0.85, hi: 1, method: 'bootstrap' },
});

/**
 * b and c approved in time and trained to the end; d was admitted late and trained to the end; e approved in time but came back
 * after the end (took the final model); a, the launcher, approved after the plan was made and was not admitted; f declined for
 * lack of data; g's operator rejected; r never answered.
 */
function view(): ScenarioView {
  const run = { startAt: 1000, participants: ['b', 'c', 'e'], approvals: { b: ans('t1'), c: ans('t1'), e: ans('t1') } };
  return [
    delta.approve('sc', 'b', ans('t1')), delta.approve('sc', 'c', ans('t1')), delta.approve('sc', 'e', ans('t1')),
    delta.run('sc', run),
    delta.approve('sc', 'd', ans('t2')), delta.admit('sc', run, 'd', { fromRound: 2, approval: ans('t2') }),
    delta.approve('sc', 'a', ans('t9')),
    delta.decline('sc', 'f', ans('t1', 'no matching data: wdbc')), delta.reject('sc', 'g', ans('t1', 'ethics board')),
    delta.progress('sc', 'b', { round: 4, seq: 9, metric: 16 / 17, done: true, heldOut: 17, roundsTrained: 5, localOnly: 1, scores: scores(w16, 16 / 17), localOnlyScores: { accuracy: { value: 1, lo: w17.lo, hi: w17.hi, method: 'wilson' } } }),
    delta.progress('sc', 'c', { round: 4, seq: 9, metric: 1, done: true, heldOut: 17, roundsTrained: 5, scores: scores(w17, 1) }),
    delta.progress('sc', 'd', { round: 4, seq: 9, metric: 0.9, done: true, heldOut: 20, roundsTrained: 3 }),
    delta.progress('sc', 'e', { round: 4, seq: 9, metric: 0.8, done: true, heldOut: 10, roundsTrained: 2, lastTrainedRound: 1 }),
    delta.state('sc', 'finished'),
  ].reduce(merge, emptyView('sc'));
}

const input = (over: Partial<ReportInput> = {}): ReportInput => ({
  id: 'sc', manifest: { name: 'demo', task: { metric: 'accuracy' }, model: { type: 'mlp' }, rounds: { max: 5 } }, view: view(), names,
  history: [{ site: 'b', round: 0, seq: 1, metric: 0.5 }, { site: 'b', round: 4, seq: 9, metric: 16 / 17 }, { site: 'c', round: 4, seq: 9, metric: 1 }],
  exportedBy: 'site-b', finalModel: true, ...over,
});

describe('answers and participants', () => {
  it('in time = the run plan; late = approved after the plan (admitted or not); declined = policy or operator; the rest no answer', () => {
    const a = answersOf(input());
    expect(a.in_time).toEqual(['site-b', 'site-c', 'site-e']);
    expect(a.late).toEqual([{ name: 'site-a', admitted_from_round: null }, { name: 'site-d', admitted_from_round: 2 }]);
    expect(a.declined).toEqual([{ name: 'site-f', reason: 'no matching data: wdbc', by: 'policy' }, { name: 'site-g', reason: 'ethics board', by: 'operator' }]);
    expect(a.no_answer).toEqual(['site-r']);
  });
  it('participants are the peers that trained to the end: not the one back after the end, not the late one never admitted', () => {
    expect(finalParticipants(view()).sort()).toEqual(['b', 'c', 'd']);
    const md = reportMarkdown(input());
    expect(md).toContain('Participants (trained up to the last round; their models make up the final model): site-b, site-c, site-d.');
    expect(md).toContain('- Approved in time (signed approvals in the launcher\'s run plan): site-b, site-c, site-e.');
    expect(md).toContain('- Approved late: site-a (after the run plan was made, not admitted), site-d (admitted from round 2).');
    expect(md).toContain('- Declined: site-f (by its policy: no matching data: wdbc), site-g (rejected by its operator: ethics board).');
    expect(md).toContain('- No answer: site-r.');
    expect(md).toContain('site-e was away at the end: it trained until round 1');
  });
});

describe('site table', () => {
  it('metric with its 95% interval, AUC and balanced accuracy beside accuracy, local-only with its interval, held-out n, rounds trained', () => {
    const md = reportMarkdown(input());
    expect(md).toContain('| site | accuracy (federated) [95% CI] | AUC [95% CI] | balanced accuracy [95% CI] | accuracy (local only) [95% CI] | held-out n | rounds trained | bytes sent |');
    // 16/17 and 17/17: Wilson (0.730, 0.990) and (0.816, 1): "1.000 vs 0.941" is one patient of 17 and the intervals overlap
    expect(md).toContain('| site-b | 0.941 [0.730, 0.990] | 0.990 [0.950, 1.000] | 0.930 [0.850, 1.000] | 1.000 [0.816, 1.000] | 17 | 5 | 0 |');
    expect(md).toContain('| site-c | 1.000 [0.816, 1.000] |');
    expect(md).toContain('| site-d | 0.900 | – | – | – | 20 | 3 | 0 |');
    expect(md).not.toContain('Zero-width bootstrap interval');
    const perfect = { ...view(), progress: { ...view().progress, c: { ...view().progress.c!, scores: { auc: { value: 1, lo: 1, hi: 1, method: 'bootstrap' as const } } } } };
    const md2 = reportMarkdown(input({ view: perfect }));
    expect(md2).toContain('| site-c | 1.000 | 1.000 [1.000, 1.000]† |');
    expect(md2).toContain('† Zero-width bootstrap interval');
    expect(withInterval(0.5, undefined)).toBe('0.500');
    expect(withInterval(null, undefined)).toBe('–');
  });
  it('metrics.json carries n, the intervals, answers, participants and whether a model is held', () => {
    const m = metricsJson(input()) as { sites: { name: string; held_out: number; scores: Record<string, { lo: number; method: string }> | null; trained_to_end: boolean }[]; participants: string[]; final_model: boolean; answers: { late: unknown[] } };
    const b = m.sites.find((s) => s.name === 'site-b')!;
    expect(b.held_out).toBe(17);
    expect(b.scores?.accuracy).toMatchObject({ lo: w16.lo, method: 'wilson' });
    expect(m.sites.find((s) => s.name === 'site-e')!.trained_to_end).toBe(false);
    expect(m.participants).toEqual(['site-b', 'site-c', 'site-d']);
    expect(m.final_model).toBe(true);
    expect(m.answers.late).toHaveLength(2);
  });
});

describe('a peer without a final model', () => {
  it('the late launcher\'s report says so, names no model file, and points to the participants', () => {
    const md = reportMarkdown(input({ exportedBy: 'site-a', finalModel: false }));
    expect(md).toContain('**site-a holds no final model of this scenario.** Its approval came after the run plan was made and was not admitted, so it trained in no round. A participant that trained to the end (site-b, site-c, site-d) can export it.');
    expect(md).not.toContain('model.onnx');
    expect(md).not.toMatch(/Approved in time[^\n]*site-a/);
    const m = metricsJson(input({ exportedBy: 'site-a', finalModel: false }));
    expect(m.final_model).toBe(false);
    expect(String(m.no_final_model)).toContain('not admitted');
  });
  it('a peer that never approved, and one still running, get their own reason', () => {
    expect(reportMarkdown(input({ exportedBy: 'site-r', finalModel: false }))).toContain('It never approved the scenario, so it trained in no round.');
    expect(reportMarkdown(input({ exportedBy: 'site-f', finalModel: false }))).toContain('It declined the scenario');
    expect(reportMarkdown(input({ exportedBy: 'site-c', finalModel: false }))).toContain('its final model is not stored yet');
    const running = { ...view(), state: 'running' as const };
    expect(reportMarkdown(input({ view: running, exportedBy: 'site-b', finalModel: false }))).toContain('The scenario is running: the final model exists once it has finished.');
  });
  it('with a model, the files line names model.onnx', () => {
    expect(reportMarkdown(input())).toContain('Files: model.onnx');
  });
});

describe('convergence plot', () => {
  it('a site\'s local-only line is dashed in the site\'s colour', () => {
    const svg = convergenceSvg(input());
    const strokeOf = (name: string): string => { const before = svg.slice(0, svg.indexOf(`>${name}<`)); return before.slice(before.lastIndexOf('stroke="') + 8).split('"')[0]!; };
    expect(svg).toContain('>site-b local-only<');
    expect(strokeOf('site-b local-only')).toBe(strokeOf('site-b'));
    expect(strokeOf('site-b')).not.toBe(strokeOf('site-c'));
  });
});

/**
 * The suspicion reports a running peer holds (robust aggregation, issue 11), by the member they name: shared by `cohort roster show
 * --peer` and `cohort status`. Each participant's latest signed report rides on its scenario progress and was verified by the
 * daemon's coordinator on receipt (a forged one is dropped there), so this only regroups what GET /scenarios/:id returns.
 */
import type { AdminClient } from '../../peer/client.ts';
// types only at load: the grouping (and zod behind it) is imported when a report is asked for, so `cohort status --help` stays light
import type { SignedSuspicion, SuspicionAbout } from '../../scenario/suspicion.ts';

interface ScenarioDetail { id: string; manifest: { name: string }; view: { progress: Record<string, { suspicion?: SignedSuspicion }> } }

export async function suspicionsAt(api: AdminClient, nameOf: (peer: string) => string): Promise<Map<string, SuspicionAbout[]>> {
  const list = await api.get<{ id: string }[]>('/scenarios');
  const details = await Promise.all(list.map((x) => api.get<ScenarioDetail>(`/scenarios/${x.id}`)));
  const { suspicionsByMember } = await import('../../scenario/suspicion.ts');
  return suspicionsByMember(details.map((d) => ({ id: d.id, name: d.manifest.name, progress: d.view.progress })), nameOf);
}

/** One line per report: who reported, in which scenario, after which round, and the score behind the name. */
export function suspicionLine(s: SuspicionAbout): string {
  return `suspected by ${s.by} in ${s.scenarioName} (${s.scenario.slice(0, 12)}) after round ${s.round}: ${s.outliers}/${s.observed} ${s.aggregator === 'clipped' ? 'clipped' : 'trimmed'}, severity ${s.severity}`;
}

/**
 * Per-round checkpoints of a running scenario, written atomically with the scenario's run state (one LevelDB batch): after a
 * crash (kill -9) the store holds either the previous round's pair or the new one, never a checkpoint without its state.
 * A round completion is a commit point: the batch is written with `sync: true`, so it survives a power cut once saveRound returns.
 * Before writing, the free space is checked against the store's floor (DISK_FULL below it: src/store/space.ts).
 *
 *   await saveRound(store, scenarioId, { round, ...state }, bytes)   // keeps only the latest checkpoint per scenario
 *   await loadRound(store, scenarioId) -> { state, bytes } | undefined
 */
import { CohortError } from '../util/errors.ts';
import { sha256Hex } from '../util/hash.ts';
import type { Store } from './db.ts';
import { checkSpace } from './space.ts';

export interface RoundState {
  readonly round: number;
  /** sha256 of the checkpoint bytes, checked on load (a torn or edited value is refused, not trained on). */
  readonly sha256?: string;
  readonly [k: string]: unknown;
}

const ckKey = (id: string): string => `${id}/latest`;
const stateKey = (id: string): string => `run/${id}`;

export async function saveRound(store: Store, scenarioId: string, state: RoundState, bytes: Uint8Array): Promise<void> {
  checkSpace(store, `the checkpoint of round ${state.round}`, bytes.byteLength);
  const withHash: RoundState = { ...state, sha256: sha256Hex(bytes) };
  await store.db.batch()
    .put(ckKey(scenarioId), bytes, { sublevel: store.checkpoints })
    .put(stateKey(scenarioId), withHash, { sublevel: store.scenarios })
    .write({ sync: true });
}

export async function loadRound(store: Store, scenarioId: string): Promise<{ state: RoundState; bytes: Uint8Array } | undefined> {
  const [state, bytes] = await Promise.all([
    store.scenarios.get(stateKey(scenarioId)) as Promise<RoundState | undefined>,
    store.checkpoints.get(ckKey(scenarioId)),
  ]);
  if (state === undefined && bytes === undefined) return undefined;
  if (state === undefined || bytes === undefined || sha256Hex(bytes) !== state.sha256) {
    throw new CohortError('CHECKPOINT_CORRUPT', `the checkpoint of scenario ${scenarioId} does not match its recorded state`,
      'the store was altered outside cohort; restore it from backup, or cancel the scenario on this peer and let it pull the model from a neighbour');
  }
  return { state, bytes };
}

export async function deleteRound(store: Store, scenarioId: string): Promise<void> {
  await store.db.batch([
    { type: 'del', sublevel: store.checkpoints, key: ckKey(scenarioId) },
    { type: 'del', sublevel: store.scenarios, key: stateKey(scenarioId) },
  ]);
}

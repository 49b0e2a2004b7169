/**
 * Disk space before it hurts: bulk writes (a round's checkpoint, a final model) first check the free space of the store's disk
 * against the configured floor (`store.minFreeBytes` in cohort.json, default 64 MiB) and refuse with DISK_FULL below it, so the
 * scenario on this peer fails with a clear reason (seen by the others as its failure code) while the disk still has room for the
 * small commit points (audit entries), and nothing committed before is touched.
 *
 *   freeBytes(dir) -> bytes available to this process;   checkSpace(store, 'round 3 checkpoint', bytes)
 */
import { statfsSync } from 'node:fs';
import { CohortError } from '../util/errors.ts';
import type { Store } from './db.ts';

export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MB`;

/** Throws DISK_FULL when writing `bytes` more would leave less than the store's floor free. */
export function checkSpace(store: Store, what: string, bytes = 0): void {
  if (store.minFreeBytes <= 0) return;
  const free = freeBytes(store.location);
  if (free - bytes < store.minFreeBytes) {
    throw new CohortError('DISK_FULL', `only ${mb(free)} free on the store's disk (floor ${mb(store.minFreeBytes)}): ${what} (${mb(bytes)}) not written`,
      'free space on the disk of the peer directory; what was committed before is intact; the daemon keeps running and this peer\'s part of the scenario stopped (its failure is visible to the other peers)');
  }
}

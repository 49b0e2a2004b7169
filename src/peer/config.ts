/**
 * The daemon's sections of a peer config file (the `net` section is src/net/config.ts):
 *   approval   auto-approve policy (src/scenario/approval.ts)
 *   data       the local datasets this hospital offers, by the name scenarios ask for: { "<name>": { path, ... } }
 *   compute    per-peer compute budget: scenarios trained at once, threads per worker, execution providers in order and what
 *              happens when one cannot run (providerFallback: cpu | error)
 *   admission  limits checked before a scenario is approved (parameters, memory, rounds x epochs, duration, queue; admission.ts)
 *   admin      admin API port on 127.0.0.1 (0: any free port, written to admin.json)
 *   heartbeatMs
 *   store      free-space floor before each round and checkpoint (minFreeBytes), audit entries per second cap (auditMaxPerSecond)
 * API: DaemonConfigSchema, loadDaemonConfig(file) -> DaemonConfig (paths resolved against the config's folder).
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { loadPeerConfig, type PeerConfig } from '../net/config.ts';
import { ApprovalPolicySchema } from '../scenario/approval.ts';
import { AdmissionPolicySchema } from './admission.ts';
import { CohortError } from '../util/errors.ts';

export const LocalDatasetSchema = z.object({
  /** A file or folder with this hospital's data; relative to the config file. */
  path: z.string().optional(),
  /** Free-form reader options (label column, modality, synthetic generator settings ...), passed to the data layer. */
  options: z.record(z.string(), z.unknown()).default({}),
  /** Marks generated, not patient, data in reports. */
  synthetic: z.boolean().default(false),
}).strict();

export const DaemonSectionsSchema = z.object({
  approval: ApprovalPolicySchema.default(() => ApprovalPolicySchema.parse({})),
  data: z.record(z.string(), LocalDatasetSchema).default({}),
  compute: z.object({
    maxConcurrentScenarios: z.number().int().positive().default(2),
    threads: z.number().int().positive().default(1),
    providers: z.array(z.enum(['cuda', 'webgpu', 'cpu'])).default(['cuda', 'webgpu', 'cpu']),
    // a listed provider that cannot run: "cpu" falls back (logged, shown in `cohort status`), "error" fails this peer's run with
    // PROVIDER_UNAVAILABLE (a GPU site that must never train on CPU by accident); src/engine/providers.ts
    providerFallback: z.enum(['cpu', 'error']).default('cpu'),
  }).strict().default(() => ({ maxConcurrentScenarios: 2, threads: 1, providers: ['cuda', 'webgpu', 'cpu'] as ('cuda' | 'webgpu' | 'cpu')[], providerFallback: 'cpu' as const })),
  admission: AdmissionPolicySchema.default(() => AdmissionPolicySchema.parse({})),
  admin: z.object({ port: z.number().int().min(0).max(65535).default(0) }).strict().default({ port: 0 }),
  heartbeatMs: z.number().int().positive().default(5000),
  /** The store (src/store): free-space floor checked before each round and checkpoint; audit entries per second (0: no cap). */
  store: z.object({
    minFreeBytes: z.number().int().nonnegative().default(64 * 1024 * 1024),
    auditMaxPerSecond: z.number().int().nonnegative().default(200),
  }).strict().default({ minFreeBytes: 64 * 1024 * 1024, auditMaxPerSecond: 200 }),
});
export type DaemonSections = z.infer<typeof DaemonSectionsSchema>;
export type LocalDataset = z.infer<typeof LocalDatasetSchema>;
export type DaemonConfig = PeerConfig & DaemonSections & { readonly dir: string; readonly file: string };

export function loadDaemonConfig(file: string): DaemonConfig {
  const peer = loadPeerConfig(file);
  const r = DaemonSectionsSchema.safeParse(peer);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new CohortError('CONFIG_INVALID', `invalid config (${file}) at "${i?.path.join('.') ?? ''}": ${i?.message ?? ''}`, 'see docs/daemon.md for the approval, data, compute, admission and admin sections');
  }
  const data = Object.fromEntries(Object.entries(r.data.data).map(([name, d]) => [name, d.path && !isAbsolute(d.path) ? { ...d, path: resolve(peer.dir, d.path) } : d]));
  return { ...peer, ...r.data, data, file: resolve(file) };
}

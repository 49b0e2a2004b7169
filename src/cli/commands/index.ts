import type { Command } from 'commander';

/**
 * The command table. Each entry names one top-level command, its one-line description (shown by `cohort --help`) and the
 * module that registers it (with its subcommands). Only the module of the command being run is loaded: `cohort --help` and
 * `cohort status` never load libp2p, onnxruntime or the DICOM parser (start-up times in docs/cli.md).
 * Add a line here when a layer gains a command; keep the command modules thin. test/unit/cli-commands.test.ts checks that
 * each description matches the one its module registers.
 */
type Register = (program: Command) => void;

export interface CommandEntry {
  readonly name: string;
  readonly description: string;
  readonly load: () => Promise<Register>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'bench', description: 'run a benchmark suite side by side in one run; writes bench/results/SUITE.json', load: async () => (await import('./bench.ts')).registerBench },
  { name: 'init', description: 'create the identity key and a commented config for a new peer', load: async () => (await import('./init.ts')).registerInit },
  { name: 'roster', description: 'create, edit, sign and verify the consortium roster', load: async () => (await import('./roster.ts')).registerRoster },
  { name: 'train', description: 'train a model locally on a CSV file or a medical image folder (no network): held-out split, metrics, optional ONNX export', load: async () => (await import('./train.ts')).registerTrain },
  { name: 'predict', description: 'score a CSV table with a model Cohort exported (raw columns in; probabilities and labels out, one row per subject)', load: async () => (await import('./predict.ts')).registerPredict },
  { name: 'sim', description: 'simulate a scenario on N in-process peers (virtual network: latency, bandwidth, loss, churn) with baselines', load: async () => (await import('./sim.ts')).registerSim },
  { name: 'peer', description: 'run and prepare peer daemons', load: async () => (await import('./peer.ts')).registerPeer },
  { name: 'scenario', description: 'launch, approve and follow training scenarios (talks to the running peer daemon)', load: async () => (await import('./scenario.ts')).registerScenario },
  { name: 'status', description: 'show the running peer: connections, scenarios, device, disk', load: async () => (await import('./status.ts')).registerStatus },
  { name: 'audit', description: 'the audit log: every outbound message and model transfer, every approval (append-only, hash-chained)', load: async () => (await import('./audit.ts')).registerAudit },
  { name: 'data', description: 'register, inspect and prepare medical data (NIfTI, DICOM, CSV); radiomics; synthetic sites', load: async () => (await import('./data.ts')).registerData },
  { name: 'store', description: 'verify, back up and repair a stopped peer\'s store', load: async () => (await import('./store.ts')).registerStore },
];

/** The first argument that is not an option: the command the user asked for (the program's own options take no value). */
export function requestedCommand(argv: readonly string[]): string | undefined {
  return argv.find((a) => !a.startsWith('-'));
}

/**
 * Registers what `argv` needs: the named command's module when argv names one; otherwise (`cohort`, `cohort --help`, a typo)
 * every command as a described stub, so that help lists them all and commander suggests the closest name.
 */
export async function registerCommands(program: Command, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const wanted = requestedCommand(argv);
  const entry = COMMANDS.find((c) => c.name === wanted);
  if (entry) {
    (await entry.load())(program);
    return;
  }
  if (wanted === 'help' && argv.length > 1) {
    const target = COMMANDS.find((c) => c.name === argv[argv.indexOf(wanted) + 1]);
    if (target) { (await target.load())(program); return; }
  }
  for (const c of COMMANDS) program.command(c.name).description(c.description);
}

/** Every command's module registered (for tests and documentation generators). */
export async function registerAllCommands(program: Command): Promise<void> {
  for (const c of COMMANDS) (await c.load())(program);
}

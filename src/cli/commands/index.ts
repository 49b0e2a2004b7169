import type { Command } from 'commander';
import { registerBench } from './bench.ts';
import { registerInit } from './init.ts';
import { registerRoster } from './roster.ts';
import { registerTrain } from './train.ts';
import { registerSim } from './sim.ts';
import { registerPeer } from './peer.ts';
import { registerScenario } from './scenario.ts';
import { registerStatus } from './status.ts';
import { registerAudit } from './audit.ts';
import { registerData } from './data.ts';

/**
 * The command table. Each entry adds one top-level command (and its subcommands) to the program.
 * Add a line here when a layer gains a command; keep the command modules thin.
 */
type Register = (program: Command) => void;

const registrations: Register[] = [
  registerBench,
  registerInit, registerRoster,
  registerTrain,
  registerSim,
  registerPeer, registerScenario, registerStatus, registerAudit,
  registerData,
];

export function registerCommands(program: Command): void {
  for (const register of registrations) register(program);
}

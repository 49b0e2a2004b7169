/**
 * Peer configuration file and the `net` section schema.
 *
 * The file is JSON: `{ "name", "//": [comments], "net": {...}, ...other sections }`. Other layers (the daemon: approval policy, data,
 * compute) add their own top-level sections; `PeerConfigSchema` keeps unknown sections (passthrough) so that they survive a round trip.
 * API: NetConfigSchema / NetConfig, PeerConfigSchema / PeerConfig, loadPeerConfig(file), resolveNetPaths(net, configDir).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { CohortError } from '../util/errors.ts';

const MiB = 1024 * 1024;

export const NetLimitsSchema = z
  .object({
    /** Largest model body a peer accepts on /cohort/model/1 (bytes). */
    maxModelBytes: z.number().int().positive().default(1024 * MiB),
    /** Model bytes being received at once, all senders together; beyond it a push is refused as 'busy' (memory guard). */
    maxInflightModelBytes: z.number().int().positive().default(2048 * MiB),
    /** Largest gossip message we publish or accept (gossipsub's own ceiling is about 4 MiB). */
    maxGossipBytes: z.number().int().positive().max(4 * MiB).default(1 * MiB),
    /** Body chunk size for model transfers (bytes). */
    chunkBytes: z.number().int().min(4096).max(16 * MiB).default(1 * MiB),
    /** libp2p refuses more new inbound connections than this per second from one host (DoS guard; raise it when many peers share one IP, e.g. on loopback). */
    inboundConnectionsPerHostPerSecond: z.number().int().positive().default(5),
  })
  .strict();

export const NetTimeoutsSchema = z
  .object({
    /** Dialling a peer and opening a stream. */
    dialMs: z.number().int().positive().default(10_000),
    /** No bytes for this long in the middle of a transfer aborts it. */
    idleMs: z.number().int().positive().default(30_000),
    /** Waiting for the receiver's acknowledgement after the last byte (it hashes the body). */
    ackMs: z.number().int().positive().default(60_000),
  })
  .strict();

export const NetConfigSchema = z
  .object({
    /** Multiaddrs to listen on, e.g. /ip4/0.0.0.0/tcp/4001. */
    listen: z.array(z.string()).default(['/ip4/0.0.0.0/tcp/4001']),
    /** Public addresses to announce instead of the listen ones (port forwarding behind NAT). */
    announce: z.array(z.string()).default([]),
    /** Multiaddrs with /p2p/PEERID of members to connect to at start. */
    bootstrap: z.array(z.string()).default([]),
    /** Discover members on the local network. */
    mdns: z.boolean().default(false),
    /** Path of a libp2p pre-shared key file (pnet v1). Relative paths are relative to the config file. */
    pskFile: z.string().optional(),
    /** Path of the Ed25519 identity key. */
    keyFile: z.string().default('peer.key'),
    /** Path of the signed consortium roster. */
    rosterFile: z.string().default('roster.json'),
    /** Consortium name: gossip topics are namespaced by it. */
    consortium: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/).default('default'),
    /** Offer circuit relay v2 to other members (a member with a public address). */
    relayServer: z.boolean().default(false),
    limits: NetLimitsSchema.default(() => NetLimitsSchema.parse({})),
    timeouts: NetTimeoutsSchema.default(() => NetTimeoutsSchema.parse({})),
  })
  .strict();

export type NetConfig = z.infer<typeof NetConfigSchema>;
export type NetConfigInput = z.input<typeof NetConfigSchema>;

export const PeerConfigSchema = z
  .object({
    name: z.string().min(1),
    '//': z.union([z.string(), z.array(z.string())]).optional(),
    net: NetConfigSchema.default(() => NetConfigSchema.parse({})),
  })
  .passthrough();

export type PeerConfig = z.infer<typeof PeerConfigSchema>;

/** Parse a net section; throws CohortError naming the bad field. */
export function parseNetConfig(input: unknown): NetConfig {
  const r = NetConfigSchema.safeParse(input);
  if (!r.success) throw configError(r.error, 'net');
  return r.data;
}

export function loadPeerConfig(file: string): PeerConfig & { readonly dir: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CohortError('CONFIG_READ', `cannot read config ${file}`, 'create one with `cohort init --dir DIR --name NAME`', { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CohortError('CONFIG_JSON', `config ${file} is not valid JSON: ${(e as Error).message}`, 'fix the syntax (comments go in the "//" field)');
  }
  const r = PeerConfigSchema.safeParse(json);
  if (!r.success) throw configError(r.error, file);
  return { ...r.data, net: resolveNetPaths(r.data.net, dirname(resolve(file))), dir: dirname(resolve(file)) };
}

/** File paths in the net section are relative to the config file's folder. */
export function resolveNetPaths(net: NetConfig, configDir: string): NetConfig {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(configDir, p));
  return { ...net, keyFile: abs(net.keyFile), rosterFile: abs(net.rosterFile), pskFile: net.pskFile ? abs(net.pskFile) : undefined };
}

function configError(err: z.ZodError, where: string): CohortError {
  const first = err.issues[0];
  const path = first ? first.path.join('.') : '';
  return new CohortError('CONFIG_INVALID', `invalid config (${where}) at "${path}": ${first?.message ?? 'unknown'}`, 'see docs/network.md for the net section');
}

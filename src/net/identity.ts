/**
 * Peer identity: an Ed25519 key stored as a libp2p protobuf private key, base64, in a file of mode 0600.
 * API: createIdentity(file), loadIdentity(file) -> Identity { privateKey, peerId }, identityFromSeed(seed) for tests and simulations.
 * Real identities use the OS CSPRNG (they are credentials, not experiment randomness); tests use identityFromSeed with a seeded Rng.
 */
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PeerId, PrivateKey } from '@libp2p/interface';
import { CohortError } from '../util/errors.ts';
import type { Rng } from '../util/random.ts';

export interface Identity {
  readonly privateKey: PrivateKey;
  readonly peerId: PeerId;
}

export function identityOf(privateKey: PrivateKey): Identity {
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey) };
}

/** Writes a new key; refuses to overwrite one (losing a key means leaving the roster). */
export async function createIdentity(file: string): Promise<Identity> {
  if (existsSync(file)) {
    throw new CohortError('IDENTITY_EXISTS', `a key already exists at ${file}`, 'use the existing key, or move it away first if you really mean to replace this peer');
  }
  const key = await generateKeyPair('Ed25519');
  writeFileSync(file, Buffer.from(privateKeyToProtobuf(key)).toString('base64') + '\n', { mode: 0o600 });
  chmodSync(file, 0o600); // the umask may have widened nothing, but an existing ACL could; be explicit
  return identityOf(key);
}

export function loadIdentity(file: string): Identity {
  if (!existsSync(file)) {
    throw new CohortError('IDENTITY_MISSING', `no key at ${file}`, 'create one with `cohort init --dir DIR --name NAME`');
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new CohortError('IDENTITY_MODE', `key file ${file} is readable by others (mode ${mode.toString(8)})`, `run: chmod 600 ${file}`);
  }
  try {
    return identityOf(privateKeyFromProtobuf(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')));
  } catch (e) {
    throw new CohortError('IDENTITY_INVALID', `key file ${file} does not hold a libp2p private key`, 'restore it from backup or create a new peer with `cohort init`', { cause: e });
  }
}

/** A deterministic identity (tests, simulations, benchmarks). */
export async function identityFromSeed(rng: Rng): Promise<Identity> {
  const seed = new Uint8Array(32);
  for (let i = 0; i < seed.length; i++) seed[i] = rng.int(256);
  return identityOf(await generateKeyPairFromSeed('Ed25519', seed));
}

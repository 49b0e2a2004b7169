/**
 * `fastNoise(init)`: @chainsafe/libp2p-noise 17 with one copy per received message removed; same wire format, same cipher.
 *
 * Why: Noise's message decoder hands each received message to `decrypt` as a Uint8ArrayList; a 64 KiB message almost always
 * spans two TCP reads, and `decrypt` then builds `dst = list.subarray(...)`, which concatenates the whole message into a new
 * buffer, only to pass it to the cipher as an in-place output that Node's OpenSSL cipher (used for messages >= 1200 bytes)
 * ignores. In profiles of a 64 MiB receive that copy (and its garbage) took ~5% of the receiving thread. The replacement below
 * is upstream's decrypt minus that copy for list input >= 1200 bytes; everything else (the WebAssembly cipher for small
 * messages, errors, metrics) is unchanged. If a newer release changes the internals, the patch is skipped with a warning
 * and upstream's code runs: only speed is at stake.
 */
import { noise, type NoiseInit } from '@chainsafe/libp2p-noise';
import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface';
import type { Uint8ArrayList } from 'uint8arraylist';
import { logger } from '../util/log.ts';
import { batchTcpWrites } from './tcp-writes.ts';

const log = logger('net:noise');

/** Noise spec: at most 65535 bytes per transport message, of which 16 are the ChaCha20-Poly1305 tag. */
const NOISE_MSG_MAX = 65535;
const TAG = 16;
/** Below this size noise uses its WebAssembly cipher, which does decrypt into `dst` (same threshold as upstream's). */
const WASM_BELOW = 1200;

type Bytes = Uint8Array | Uint8ArrayList;
interface DecryptingStream {
  handshake: { decrypt(ciphertext: Bytes, dst?: Uint8Array): Bytes };
  metrics?: { decryptedPackets: { increment(): void }; decryptErrors: { increment(): void } };
}

function decrypt(this: DecryptingStream, chunk: Bytes): Bytes {
  const parts: Bytes[] = [];
  for (let i = 0; i < chunk.byteLength; i += NOISE_MSG_MAX) {
    const end = Math.min(i + NOISE_MSG_MAX, chunk.byteLength);
    if (end - TAG < i) throw new Error('Invalid chunk');
    const encrypted = chunk instanceof Uint8Array ? chunk.subarray(i, end) : chunk.sublist(i, end);
    // reuse the ciphertext's memory as the output where that is free, or where the WebAssembly cipher will use it
    const dst = encrypted instanceof Uint8Array || encrypted.byteLength < WASM_BELOW ? encrypted.subarray(0, end - i - TAG) : undefined;
    try {
      parts.push(this.handshake.decrypt(encrypted, dst));
      this.metrics?.decryptedPackets.increment();
    } catch (e) {
      this.metrics?.decryptErrors.increment();
      throw e;
    }
  }
  if (parts.length === 1) return parts[0]!;
  return concatParts(parts, chunk);
}

/** More than one message in one chunk (not produced by noise's decoder today): keep upstream's list-of-parts result. */
function concatParts(parts: Bytes[], like: Bytes): Bytes {
  const List = (like instanceof Uint8Array ? undefined : like.constructor) as (new () => Uint8ArrayList) | undefined;
  if (!List) return Buffer.concat(parts.map((p) => (p instanceof Uint8Array ? p : p.subarray())));
  const out = new List();
  for (const p of parts) out.append(p);
  return out;
}

let patched: 'yes' | 'no' | undefined;

/** Replace decrypt on the encrypted stream's class, once, if it has the shape this was written against. */
function patchStream(conn: object): void {
  if (patched) return;
  if (process.env.COHORT_NET_NOISE_FIX === '0') { patched = 'no'; return; } // upstream's code, for before/after comparisons
  const proto = Object.getPrototypeOf(conn) as Record<string, unknown>;
  const handshake = (conn as Partial<DecryptingStream>).handshake;
  if (typeof proto.decrypt === 'function' && proto.decrypt.length === 1 && typeof handshake?.decrypt === 'function') {
    proto.decrypt = decrypt;
    patched = 'yes';
  } else {
    patched = 'no';
    log.warn('@chainsafe/libp2p-noise internals changed; running without the receive-copy fix (slower, still correct)');
  }
}

export function fastNoise(init?: NoiseInit): ReturnType<typeof noise> {
  const factory = noise(init);
  return (components) => {
    const enc: ConnectionEncrypter<unknown> = factory(components);
    const wrap = <T extends SecuredConnection<unknown>>(p: Promise<T>): Promise<T> => p.then((r) => { patchStream(r.connection); return r; });
    const inbound = enc.secureInbound.bind(enc);
    const outbound = enc.secureOutbound.bind(enc);
    // the connection noise encrypts onto is, without pnet, @libp2p/tcp's stream: batch its writes too (tcp-writes.ts)
    enc.secureInbound = (connection, options) => { batchTcpWrites(connection); return wrap(inbound(connection, options)); };
    enc.secureOutbound = (connection, options) => { batchTcpWrites(connection); return wrap(outbound(connection, options)); };
    return enc as ReturnType<ReturnType<typeof noise>>;
  };
}

/** For tests: whether the fix is active ('yes'), was refused ('no'), or no connection has been secured yet (undefined). */
export function noisePatchState(): 'yes' | 'no' | undefined {
  return patched;
}

/**
 * Private network (libp2p pnet v1 pre-shared key) with the large-transfer fix.
 *
 * @libp2p/pnet runs xsalsa20 in WebAssembly whose memory cannot grow much past 62.5 MiB; it copies each outgoing buffer whole into
 * that memory, so one big write (yamux coalesces frames) crashes the process with RangeError. We wrap its protector and feed the
 * cipher 64 KiB slices: xsalsa20 is a stream cipher, so slicing is byte-identical to one call (peers without the fix interoperate).
 * API: pnetProtector(pskBytes), readPsk(file), writeNewPsk(file).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKey, preSharedKey } from '@libp2p/pnet';
import type { ConnectionProtector, MessageStream, AbortOptions } from '@libp2p/interface';
import { CohortError } from '../util/errors.ts';
import { batchTcpWrites } from './tcp-writes.ts';

const SLICE = 64 * 1024;

interface XorCipher {
  update(input: Uint8Array, output?: Uint8Array): Uint8Array;
}

/** Same result as cipher.update(input), without ever handing the WebAssembly more than SLICE bytes. */
export function slicedCipher(inner: XorCipher): XorCipher {
  return {
    update(input: Uint8Array, output?: Uint8Array): Uint8Array {
      const out = output ?? new Uint8Array(input.byteLength);
      if (input.byteLength <= SLICE) return inner.update(input, out);
      for (let off = 0; off < input.byteLength; off += SLICE) {
        const end = Math.min(off + SLICE, input.byteLength);
        inner.update(input.subarray(off, end), out.subarray(off, end));
      }
      return out;
    },
  };
}

interface BoxStreamInternals {
  inboundXor?: XorCipher;
  outboundXor?: XorCipher;
}

function patchBoxStream(stream: MessageStream): MessageStream {
  const box = stream as unknown as BoxStreamInternals;
  if (!box.inboundXor || !box.outboundXor) {
    // A newer @libp2p/pnet changed its internals: fail loudly rather than crash later on a large model.
    throw new CohortError('PNET_INTERNALS', '@libp2p/pnet internals changed; the large-transfer fix cannot be applied', 'pin @libp2p/pnet 3.0.x or update src/net/pnet.ts');
  }
  box.inboundXor = slicedCipher(box.inboundXor);
  box.outboundXor = slicedCipher(box.outboundXor);
  return stream;
}

/** What every libp2p connection says first, in both directions: multistream-select's header (varint length 19). */
const MSS_HEADER = new TextEncoder().encode('\x13/multistream/1.0.0\n');

/**
 * The first bytes the remote sends, once decrypted, must be multistream-select's header: anything else means it encrypts with
 * a different pre-shared key (or is not a libp2p peer). Without this check a wrong key leaves no trace: the upgrade fails in
 * multistream-select (listener) or hangs until the dial times out (dialer), logged at libp2p's debug level only.
 */
function watchFirstBytes(cipher: XorCipher, onMismatch: () => void): XorCipher {
  const seen = new Uint8Array(MSS_HEADER.length);
  let n = 0;
  return {
    update(input: Uint8Array, output?: Uint8Array): Uint8Array {
      const out = cipher.update(input, output);
      if (n < seen.length) {
        const take = Math.min(seen.length - n, out.byteLength);
        seen.set(out.subarray(0, take), n);
        const before = n;
        n += take;
        if (seen.subarray(before, n).some((b, i) => b !== MSS_HEADER[before + i])) {
          n = seen.length;   // report once
          onMismatch();
        }
      }
      return out;
    },
  };
}

/** `onMismatch(remoteAddr)`: a connection whose remote holds a different pre-shared key (node.ts logs and counts it). */
export function pnetProtector(psk: Uint8Array, onMismatch?: (remoteAddr: string) => void): () => ConnectionProtector {
  const factory = preSharedKey({ psk });
  return () => {
    const inner = factory();
    return {
      async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
        batchTcpWrites(connection); // with pnet, the protector (not noise) is the first to see the TCP stream
        const out = patchBoxStream(await inner.protect(connection, options));
        if (onMismatch) {
          const box = out as unknown as BoxStreamInternals;
          const addr = String((connection as { remoteAddr?: unknown }).remoteAddr ?? 'unknown');
          box.inboundXor = watchFirstBytes(box.inboundXor!, () => onMismatch(addr));
        }
        return out;
      },
    };
  };
}

export function readPsk(file: string): Uint8Array {
  if (!existsSync(file)) throw new CohortError('PSK_MISSING', `no pre-shared key at ${file}`, 'copy the consortium\'s swarm.key here, or remove net.pskFile from the config');
  const bytes = readFileSync(file);
  const lines = bytes.toString('utf8').split(/\r?\n/);
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-f]{64}$/i.test(lines[2] ?? '')) {
    throw new CohortError('PSK_INVALID', `${file} is not a libp2p v1 pre-shared key`, 'create one with `cohort init --psk` or ask your consortium admin for swarm.key');
  }
  return new Uint8Array(bytes);
}

export function writeNewPsk(file: string): void {
  const key = new Uint8Array(95);
  generateKey(key);
  writeFileSync(file, key, { mode: 0o600 });
}

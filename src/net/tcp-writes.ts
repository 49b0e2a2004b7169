/**
 * `batchTcpWrites(conn)`: make @libp2p/tcp hand each batch of buffers to the kernel in one writev instead of one write() each.
 *
 * Why: @libp2p/tcp 11 sends a Uint8ArrayList by calling socket.write() once per buffer, on a socket with TCP_NODELAY. Noise
 * turns every 64 KiB message into several buffers (2-byte length, ciphertext, 16-byte tag) and yamux adds its 12-byte headers,
 * so a 64 MiB model became thousands of small syscalls and tiny TCP segments, each of which the receiver then handles as its
 * own read event. Corking the socket around the loop sends the same bytes, in the same order, in one writev per batch.
 * The patch applies to the TCP stream class once, only if it has the shape it was written against; otherwise upstream runs.
 */
import type { Socket } from 'node:net';
import type { Uint8ArrayList } from 'uint8arraylist';
import { logger } from '../util/log.ts';

const log = logger('net:tcp');

interface TcpStream { socket: Socket }

function sendData(this: TcpStream, data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean } {
  const socket = this.socket;
  let sentBytes = 0;
  socket.cork();
  try {
    for (const buf of data) {
      socket.write(buf);
      sentBytes += buf.byteLength;
    }
  } finally {
    socket.uncork(); // one writev for the whole batch
  }
  // what the kernel did not take stays in the socket's own buffer; ask for a drain once that passes the high-water mark
  return { sentBytes, canSendMore: socket.writableLength < socket.writableHighWaterMark };
}

let state: 'yes' | 'no' | undefined;

/** `conn` is the connection an encrypter receives; patched only when it is @libp2p/tcp's stream (not pnet's, not a relay's). */
export function batchTcpWrites(conn: object): void {
  if (state === 'yes') return;
  if (process.env.COHORT_NET_TCP_BATCH === '0') { state = 'no'; return; } // upstream's code, for before/after comparisons
  const socket = (conn as Partial<TcpStream>).socket;
  const proto = Object.getPrototypeOf(conn) as Record<string, unknown>;
  if (!socket || typeof socket.cork !== 'function' || typeof socket.uncork !== 'function') return; // not a TCP stream
  if (typeof proto.sendData === 'function' && proto.sendData.length === 1 && proto.constructor?.name === 'TCPSocketMultiaddrConnection') {
    proto.sendData = sendData;
    state = 'yes';
  } else if (state === undefined) {
    state = 'no';
    log.warn('@libp2p/tcp internals changed; sending without write batching (slower, still correct)');
  }
}

/** For tests: 'yes' once the patch is active, 'no' if refused, undefined before the first TCP connection. */
export function tcpBatchState(): 'yes' | 'no' | undefined {
  return state;
}

/**
 * Faults injected into an in-process averaging transport for the secure-averaging tests (simulator peers): a peer whose sends
 * are filtered, and a share holder that tampers with and replays what it releases.
 */
import { SECURE_CODEC } from '../../src/averaging/secure/node.ts';
import type { AveragingMessage, AveragingTransport } from '../../src/averaging/types.ts';

/** `t` with its sends going through `send` instead (everything else unchanged: the methods are bound explicitly). */
export function withSend(t: AveragingTransport, send: (to: string, msg: AveragingMessage) => unknown): AveragingTransport {
  return { ...t, self: t.self, neighbours: () => t.neighbours(), peers: () => t.peers(), now: () => t.now(), setTimer: (ms, cb) => t.setTimer(ms, cb),
    clearTimer: (id) => t.clearTimer(id), computeDelay: (s) => t.computeDelay(s), onMessage: (h) => t.onMessage(h),
    send: (to: string, msg: AveragingMessage) => { send(to, msg); } };
}

/** A holder that tampers with every share it releases, and replays each one to the next round. */
export function tamperer(holder: number) {
  return (i: number, t: AveragingTransport): AveragingTransport => {
    if (i !== holder) return t;
    return withSend(t, (to, msg) => {
      if (msg.kind !== 'model' || msg.codec !== SECURE_CODEC.share) return t.send(to, msg);
      const bad = msg.payload.slice();
      bad[0] ^= 0xff;
      t.send(to, { ...msg, payload: bad });
      t.send(to, { ...msg, round: msg.round + 1 });
    });
  };
}

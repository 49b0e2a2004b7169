/** Parent side of bench/net/peer.ts: spawn a peer process and talk to it over IPC. */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PEER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'peer.ts');

export type PeerEvent = { ev: string; [k: string]: unknown };

export class PeerProcess {
  readonly child: ChildProcess;
  private readonly waiters: Array<{ ev: string; resolve: (e: PeerEvent) => void; reject: (e: Error) => void; pred?: (e: PeerEvent) => boolean }> = [];
  readonly events: PeerEvent[] = [];
  private listeners: Array<(e: PeerEvent) => void> = [];
  addr = '';
  peerId = '';

  private constructor(args: Record<string, unknown>) {
    this.child = fork(PEER_SCRIPT, [JSON.stringify(args)], {
      // COHORT_PEER_NODE_ARGS: extra node flags for the peer processes (e.g. --cpu-prof while investigating throughput)
      execArgv: ['--import', 'tsx', ...(process.env.COHORT_PEER_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
      env: { ...process.env, COHORT_LOG_LEVEL: process.env.COHORT_LOG_LEVEL ?? 'warn' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: PeerEvent) => this.dispatch(m));
    this.child.on('exit', (code) => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`peer process exited (${code}) while waiting for ${w.ev}`));
    });
  }

  static async start(args: { seed: number; n: number; index: number; psk?: string; chunkBytes?: number; maxStreamWindowSize?: number; initialStreamWindowSize?: number }): Promise<PeerProcess> {
    const p = new PeerProcess(args);
    const ready = await p.wait('ready', 60_000);
    p.addr = String(ready.addr);
    p.peerId = String(ready.peerId);
    return p;
  }

  on(listener: (e: PeerEvent) => void): void { this.listeners.push(listener); }

  send(cmd: Record<string, unknown>): void { this.child.send(cmd); }

  async request(cmd: Record<string, unknown>, ev: string, timeoutMs = 30_000): Promise<PeerEvent> {
    const p = this.wait(ev, timeoutMs);
    this.send(cmd);
    return p;
  }

  wait(ev: string, timeoutMs = 30_000, pred?: (e: PeerEvent) => boolean): Promise<PeerEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${ev}`)), timeoutMs);
      this.waiters.push({
        ev, pred,
        resolve: (e) => { clearTimeout(timer); resolve(e); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }

  kill(): void { this.child.kill('SIGKILL'); }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.send({ op: 'stop' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  private dispatch(m: PeerEvent): void {
    this.events.push(m);
    for (const l of this.listeners) l(m);
    if (m.ev === 'error') {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`peer error: ${String(m.message)}`));
      return;
    }
    const i = this.waiters.findIndex((w) => w.ev === m.ev && (!w.pred || w.pred(m)));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
  }
}

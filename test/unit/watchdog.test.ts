import { describe, expect, it } from 'vitest';
import { attribute, MemoryWatchdog } from '../../src/peer/watchdog.ts';

const MiB = 1024 ** 2;

describe('native-memory watchdog attribution', () => {
  it('one worker: the growth since it became ready, against its budget', () => {
    const w = { id: 'a', budgetBytes: 100 * MiB, baselineRss: 300 * MiB };
    expect(attribute(350 * MiB, [w])).toEqual({ used: new Map([['a', 50 * MiB]]) });
    expect(attribute(250 * MiB, [w]).used.get('a')).toBe(0);   // the daemon shrank: never negative
    expect(attribute(401 * MiB, [w]).over).toEqual({ id: 'a', usedBytes: 101 * MiB, budgetBytes: 100 * MiB });
  });

  it('two workers: growth since the older one is checked against both budgets; the larger budget is stopped', () => {
    const old = { id: 'old', budgetBytes: 100 * MiB, baselineRss: 200 * MiB };
    const big = { id: 'big', budgetBytes: 300 * MiB, baselineRss: 280 * MiB };
    // 80 MiB of the older one's before the newer became ready, then 250 MiB more: within 100 + 300
    expect(attribute(530 * MiB, [big, old]).over).toBeUndefined();
    // the newer alone over its 300 MiB: it is the one stopped
    expect(attribute(600 * MiB, [old, big]).over).toEqual({ id: 'big', usedBytes: 320 * MiB, budgetBytes: 300 * MiB });
    // together over 400 MiB while the newer is within its own: the larger budget goes
    expect(attribute(610 * MiB, [old, { ...big, baselineRss: 400 * MiB }]).over).toEqual({ id: 'big', usedBytes: 410 * MiB, budgetBytes: 400 * MiB });
  });

  it('memory the process gives back after a worker became ready lowers its baseline (growth is not hidden)', () => {
    let rss = 900 * MiB;   // a previous worker is still leaving when this one becomes ready
    const stopped: string[] = [];
    const dog = new MemoryWatchdog(() => [{ id: 'a', budgetBytes: 100 * MiB, baselineRss: 900 * MiB }], (id) => stopped.push(id), () => rss);
    dog.sample();
    rss = 400 * MiB;       // it left
    dog.sample();
    expect(dog.usedBytes('a')).toBe(0);
    rss = 480 * MiB;       // this worker grows by 80 MiB: within 100
    dog.sample();
    expect(dog.usedBytes('a')).toBe(80 * MiB);
    expect(stopped).toEqual([]);
    rss = 520 * MiB;       // 120 MiB since the low point: over, though still far below the first baseline
    dog.sample();
    expect(stopped).toEqual(['a']);
  });

  it('stops a worker once, and reports the last figures', () => {
    let rss = 100 * MiB;
    const stopped: string[] = [];
    let live = [{ id: 'a', budgetBytes: 10 * MiB, baselineRss: 100 * MiB }];
    const dog = new MemoryWatchdog(() => live, (id) => stopped.push(id), () => rss);
    dog.sample();
    expect(dog.usedBytes('a')).toBe(0);
    rss = 120 * MiB;
    dog.sample();
    dog.sample();
    expect(stopped).toEqual(['a']);
    live = [];
    dog.sample();
    expect(dog.usedBytes('a')).toBeUndefined();
  });
});

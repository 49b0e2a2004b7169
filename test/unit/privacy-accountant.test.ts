// The RDP accountant against reference implementations' own published test values:
//  - tensorflow/privacy, tensorflow_privacy/privacy/analysis/rdp_accountant_test.py (compute_rdp, get_privacy_spent)
//  - tensorflow/privacy, tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py (test_compute_dp_sgd_privacy:
//    Test0 is the MNIST setting n=60000, batch 150, sigma 1.3, 15 epochs; eps and optimal order)
import { describe, expect, it } from 'vitest';
import { computeRdp, epsilonFor, epsilonFromRdp, epsilonSpent, logErfc, noiseMultiplierFor, rdpStep } from '../../src/privacy/accountant.ts';

// compute_dp_sgd_privacy_lib's orders
const TF_ORDERS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...Array.from({ length: 59 }, (_, i) => 5 + i), 128, 256, 512];

describe('RDP of the sampled Gaussian mechanism', () => {
  it('matches rdp_accountant_test.test_compute_rdp_sequence (q 0.01, sigma 2.5, 50 steps), fractional and integer orders', () => {
    const got = computeRdp(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100]);
    const want = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307];
    got.forEach((v, k) => expect(Math.abs(v - want[k])).toBeLessThan(1e-5));
    expect(rdpStep(0.01, 2.5, Infinity)).toBe(Infinity);
  });

  it('matches test_compute_rdp_scalar, no_data and no_sampling', () => {
    expect(computeRdp(0.1, 2, 10, [5])[0]).toBeCloseTo(0.07737, 5);
    expect(computeRdp(0, 10, 1, [20])[0]).toBe(0);
    expect(computeRdp(1, 10, 1, [20])[0]).toBe(0.1);
  });

  it('log erfc is accurate across the range (erfc(0)=1, erfc(1)=0.157299207, erfc(-2)=1.995322265, erfc(10)=2.088487583762545e-45)', () => {
    expect(logErfc(0)).toBeCloseTo(0, 6);
    expect(Math.exp(logErfc(1)) / 0.157299207050285 - 1).toBeLessThan(2e-7);
    expect(Math.abs(Math.exp(logErfc(-2)) / 1.995322265018953 - 1)).toBeLessThan(2e-7);
    expect(Math.abs(logErfc(10) - Math.log(2.088487583762545e-45))).toBeLessThan(2e-6);
  });
});

describe('(epsilon, delta) conversion', () => {
  it('constant RDP 1.1 on orders 2..32, delta 1e-5 gives eps 1.32783806176 at order 32 (test_get_privacy_spent_check_target_delta)', () => {
    const orders = Array.from({ length: 31 }, (_, i) => i + 2);
    const r = epsilonFromRdp(orders, orders.map(() => 1.1), 1e-5);
    expect(r.order).toBe(32);
    expect(r.epsilon).toBeCloseTo(1.32783806176, 9);
  });

  it('the Gaussian mechanism with sigma 4.530877117 (no sampling) is (1, 1e-6)-DP on a fine grid of orders', () => {
    const orders = Array.from({ length: 99000 }, (_, i) => 0.001 * (i + 1000)).filter((a) => a > 1);
    expect(epsilonSpent([{ q: 1, sigma: 4.530877117, steps: 1 }], 1e-6, orders).epsilon).toBeCloseTo(1, 6);
  });

  it('DP-SGD statements of compute_dp_sgd_privacy_test (MNIST 60000/150/1.3/15 epochs; 100000/100/1.0/30; 1e8/1024/0.1/10)', () => {
    const cases = [
      { n: 60000, b: 150, sigma: 1.3, epochs: 15, delta: 1e-5, eps: 0.7242234026109595, order: 19 },
      { n: 100000, b: 100, sigma: 1.0, epochs: 30, delta: 1e-7, eps: 1.4154988495444842, order: 13 },
      { n: 100000000, b: 1024, sigma: 0.1, epochs: 10, delta: 1e-7, eps: 5907982.3113978775, order: 1.25 },
    ];
    for (const c of cases) {
      const r = epsilonSpent([{ q: c.b / c.n, sigma: c.sigma, steps: Math.ceil(c.epochs * c.n / c.b) }], c.delta, TF_ORDERS);
      expect(Math.abs(r.epsilon / c.eps - 1)).toBeLessThan(1e-8);
      expect(r.order).toBe(c.order);
    }
  });

  it('composition: phases add their RDP (two halves = the whole); more steps or less noise cost more', () => {
    const whole = epsilonSpent([{ q: 0.05, sigma: 1.1, steps: 400 }], 1e-5).epsilon;
    const halves = epsilonSpent([{ q: 0.05, sigma: 1.1, steps: 200 }, { q: 0.05, sigma: 1.1, steps: 200 }], 1e-5).epsilon;
    expect(halves).toBeCloseTo(whole, 10);
    expect(epsilonFor(0.05, 1.1, 800, 1e-5)).toBeGreaterThan(whole);
    expect(epsilonFor(0.05, 0.9, 400, 1e-5)).toBeGreaterThan(whole);
    expect(epsilonSpent([{ q: 0.05, sigma: 1.1, steps: 0 }], 1e-5).epsilon).toBe(0);
  });
});

describe('noise multiplier for a target epsilon', () => {
  it('returns a sigma that meets the target, and barely (0.1% less noise would exceed it)', () => {
    for (const [eps, q, steps] of [[1, 0.07, 420], [3, 0.07, 420], [8, 0.01, 3000]] as const) {
      const sigma = noiseMultiplierFor(eps, 1e-5, q, steps);
      expect(epsilonFor(q, sigma, steps, 1e-5)).toBeLessThanOrEqual(eps);
      expect(epsilonFor(q, sigma * 0.997, steps, 1e-5)).toBeGreaterThan(eps * 0.99);
    }
  });

  it('refuses epsilon <= 0, delta outside (0,1) and bad rates', () => {
    expect(() => noiseMultiplierFor(0, 1e-5, 0.1, 10)).toThrow(/positive/);
    expect(() => noiseMultiplierFor(-1, 1e-5, 0.1, 10)).toThrow(/positive/);
    expect(() => epsilonFor(0.1, 1, 10, 0)).toThrow(/delta/);
    expect(() => epsilonFor(1.5, 1, 10, 1e-5)).toThrow(/sampling rate/);
  });
});

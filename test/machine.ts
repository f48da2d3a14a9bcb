/**
 * Time budgets that scale with the machine. The tests run on loaded 2-core machines, where the
 * same work can take several times as long as on a quiet one, so a fixed budget either fails
 * there or is too loose to catch anything on a quiet machine.
 *
 * {@link slowdown} times a fixed piece of work like the slowest the tests do (scrypt with
 * N = 2^14, r = 8: 16 MiB of memory traffic, as a passphrase image costs to open), median of 3,
 * against what it took on a quiet machine of the kind CI runs on: 34 ms (median of 7).
 * {@link budget} scales a quiet-machine budget by it. Measured once per test file, at import.
 */
import { scryptSync } from 'node:crypto';

/** Median ms of the reference work on a quiet 2-vCPU machine. */
const QUIET_MS = 34;

function measure(): number {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    scryptSync('crimg', 'machine budget', 32, { N: 2 ** 14, r: 8, p: 1 });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[1]!;
}

/** How many times slower than a quiet machine this one is now; at least 1. */
export const slowdown: number = Math.max(1, measure() / QUIET_MS);

/** `quietMs` scaled by {@link slowdown}, rounded up to a whole ms. */
export function budget(quietMs: number): number {
  return Math.ceil(quietMs * slowdown);
}

/**
 * A fuzz worker process (forked by spec/fuzz/run.ts): loads the vectors, then runs the cases
 * the parent sends one at a time and answers with each result. A separate process, so that a
 * hang can be killed and a native crash (the restore step maps memory) costs one case only.
 */
import { makeCase } from './mutator.js';
import { loadVectors, runCase, type HarnessOptions, type LoadOptions } from './harness.js';

interface Start { dir: string; seed: number; options: HarnessOptions; load?: LoadOptions }

const send = (m: unknown): void => { process.send!(m); };
let ctx: { seed: number; options: HarnessOptions; vectors: Awaited<ReturnType<typeof loadVectors>> } | null = null;

process.on('message', (m: { type: 'start'; start: Start } | { type: 'case'; index: number }) => {
  void (async () => {
    if (m.type === 'start') {
      ctx = { seed: m.start.seed, options: m.start.options, vectors: await loadVectors(m.start.dir, m.start.load) };
      send({ type: 'ready' });
      return;
    }
    // Self-tests of run.ts's watchdog (test/fuzz.test.ts): hang or crash on one case number.
    if (process.env.CRIMG_FUZZ_SELFTEST_HANG === String(m.index)) for (;;);
    if (process.env.CRIMG_FUZZ_SELFTEST_CRASH === String(m.index)) process.kill(process.pid, 'SIGSEGV');
    const { infos, originals } = ctx!.vectors;
    const c = makeCase(infos, ctx!.seed, m.index);
    const r = await runCase(c, originals.get(c.vector)!, ctx!.options);
    send({ type: 'result', result: r });
  })().catch((e: unknown) => {
    send({ type: 'fatal', message: String((e as Error)?.stack ?? e) });
  });
});
process.on('disconnect', () => process.exit(0));

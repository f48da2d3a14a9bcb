/**
 * `crimg capture --pid PID OUT`: the memory of a live process as an image. The process is
 * stopped with SIGSTOP while its memory is read and resumed with SIGCONT afterwards, also on
 * failure (unless --leave-stopped). Codec and key options are those of `crimg create`.
 */
import type { Argv } from 'yargs';
import { DEFAULT_CHUNK_SIZE, type CipherName } from '../../format/index.js';
import type { Cli } from '../context.js';
import type { Progress } from '../progress.js';
import { usageError } from '../errors.js';
import { readKey } from '../keys.js';
import { keySources, withJson, withKeyOptions } from '../options.js';
import { parseSize } from '../numbers.js';
import { keyedValues } from '../specs.js';
import { humanBytes, safeText, shownName, writeSummaryText } from '../text.js';
import { modeOption, withMode } from '../file-mode.js';

/** A pid: decimal digits only (a "0x" or "12abc" is a typo, not a process). */
export function parsePid(text: string | number): number {
  const t = String(text).trim();
  if (!/^\d+$/.test(t) || Number(t) === 0 || !Number.isSafeInteger(Number(t))) throw usageError(`expected --pid as a positive decimal process id, got ${JSON.stringify(String(text))}`);
  return Number(t);
}

/** Milliseconds: decimal digits only. */
function parseMs(text: string | number, option: string): number {
  const t = String(text).trim();
  if (!/^\d{1,9}$/.test(t)) throw usageError(`expected ${option} as a whole number of milliseconds, got ${JSON.stringify(String(text))}`);
  return Number(t);
}

/** How a pre-copy found the written pages, as the output says it. */
const PRE_COPY_HOW = {
  'soft-dirty': '; changed pages found by soft-dirty bits',
  'uffd-wp': '; changed pages found by write protection (userfaultfd)',
  checksums: '; changed pages found by checksum, every page read again while stopped',
} as const;

export function registerCapture(y: Argv, cli: Cli, exit: (code: number) => void): Argv {
  return y.command(
    'capture <out>',
    'capture the memory of a live process (stopped while it is read)',
    (a) => withMode(withJson(withKeyOptions(a.positional('out', { type: 'string', demandOption: true, describe: 'image file to write' }), 'encrypt the image (with --encrypt)')))
      .option('pid', { type: 'string', demandOption: true, requiresArg: true, describe: 'process id to capture' })
      .option('leave-stopped', { type: 'boolean', describe: 'leave the process stopped afterwards (resume it with kill -CONT PID)' })
      .option('chunk-size', { type: 'string', requiresArg: true, describe: `chunk size, a power of two (default: the page size without --compress and --encrypt, else ${DEFAULT_CHUNK_SIZE / 1024}K)` })
      .option('compress', { type: 'string', requiresArg: true, default: 'none', describe: 'none, deflate[:LEVEL] (1-9) or zstd[:LEVEL] (1-19)' })
      .option('encrypt', { type: 'string', choices: ['aes-256-gcm', 'chacha20-poly1305'] as const, requiresArg: true, describe: 'cipher suite; needs a key option' })
      .option('label', { type: 'string', array: true, nargs: 1, describe: 'K=V restore label the host must match, repeatable' })
      .option('stop-timeout', { type: 'string', requiresArg: true, default: '5000', describe: 'milliseconds to wait for every thread to stop after SIGSTOP' })
      .option('lock-wait', { type: 'string', requiresArg: true, default: '0', describe: 'milliseconds to wait for another capture of the same process to finish (0: fail at once with PROCESS_BUSY)' })
      .option('encode-while-stopped', { type: 'boolean', describe: 'compress and encrypt while the process is stopped (default: read raw pages into a stage file beside OUT while stopped, encode after resuming it)' })
      .option('pre-copy', { type: 'boolean', conflicts: 'encode-while-stopped', describe: 'read the memory while the process runs, then stop it only for the pages written since (found by --pre-copy-tracking; the output says which)' })
      .option('pre-copy-tracking', { type: 'string', choices: ['auto', 'soft-dirty', 'uffd-wp', 'checksums'] as const, default: 'auto', describe: "how --pre-copy finds written pages: soft-dirty bits; uffd-wp: write protection through a userfaultfd the process is made to open (Linux 6.7+, x86-64; a thread of it stopped for under a millisecond); checksums: the stop reads every page again and writes only the changed ones; auto: the first that works, in that order (a named one falls back to checksums)" })
      .option('parent', { type: 'string', requiresArg: true, describe: 'write a child image of this earlier capture: only chunks that differ from it are stored (reading the child needs it)' })
      .option('file-mappings', { type: 'string', choices: ['copy', 'gap'] as const, default: 'copy', describe: "copy: every readable mapping's bytes (a self-contained image); gap: read-only mappings of files the process has not written become gaps named 'PATH @0xOFFSET PROT', as gcore and CRIU leave them out" })
      .example('$0 capture --pid 1234 app.img', 'capture process 1234')
      .example('$0 capture --pid 1234 app.img --file-mappings gap', "leave libraries' code and constants to be mapped from their files")
      .example('$0 capture --pid 1234 app.img --compress deflate:1 --encrypt aes-256-gcm --key-file app.key', 'compressed and encrypted')
      .example('$0 capture --pid 1234 app2.img --pre-copy --parent app.img', 'a short stop, and only what changed since app.img')
      .epilog('Reading another process\'s memory needs ptrace access: the same user id (subject to /proc/sys/kernel/yama/ptrace_scope) or CAP_SYS_PTRACE. [vvar] and [vsyscall] are recorded as gaps, and so are mappings without read permission unless they hold written pages; [vdso] is captured as code. SIGINT, SIGTERM and SIGHUP resume the process and remove the temporary files before crimg dies of them. Exit status 2 for a process that is gone, refuses to be read or is being captured already.'),
    async (a) => {
      const pid = parsePid(a.pid);
      const key = await readKey(keySources(a), cli.env);
      if (a.encrypt !== undefined && key === undefined) throw usageError(`expected a key option with --encrypt ${a.encrypt}`, 'give --key-file, --key-env or --passphrase-file');
      if (a.encrypt === undefined && key !== undefined) throw usageError('expected --encrypt SUITE with a key option');
      const { captureProcess } = await import('../../capture/index.js');
      let progress: Progress | null = null;
      let result;
      try {
        result = await captureProcess(pid, a.out, {
          ...(a.chunkSize !== undefined ? { chunkSize: parseSize(a.chunkSize, 'chunk size') } : {}),
          compress: a.compress,
          ...(a.encrypt !== undefined ? { encrypt: a.encrypt as CipherName, key } : {}),
          ...(a.leaveStopped ? { leaveStopped: true } : {}),
          ...modeOption(a),
          stopTimeoutMs: parseMs(a.stopTimeout, '--stop-timeout'),
          lockWaitMs: parseMs(a.lockWait, '--lock-wait'),
          // An s3:// OUT has no directory for a stage file: encode while stopped, nothing on local disk.
          // (A pre-copy logs its pages in the temporary directory then, sealed when encrypted.)
          ...(a.encodeWhileStopped || (/^s3:\/\//i.test(a.out) && !a.preCopy) ? { encodeWhileStopped: true } : {}),
          ...(a.preCopy ? { preCopy: true, preCopyTracking: a.preCopyTracking as 'auto' } : {}),
          ...(a.parent !== undefined ? { parent: a.parent } : {}),
          fileMappings: a.fileMappings as 'copy' | 'gap',
          labels: keyedValues(a.label, '--label', (v) => v),
          onProgress: (done, total) => {
            progress ??= cli.progress(a.quiet as boolean | undefined, 'capture', total, 'bytes');
            progress.update(done);
          },
        });
      } finally {
        (progress as Progress | null)?.finish();
      }
      if (a.json) cli.printJson(result);
      else if (!a.quiet) {
        const state = (result.wasStopped ? 'it was stopped before and is left stopped'
          : result.resumed ? `stopped for ${result.stoppedMs} ms, then resumed`
            : `left stopped after ${result.stoppedMs} ms: resume it with kill -CONT ${pid}`)
          + (result.staged ? '; encoded after the stop' : '');
        const pre = result.preCopy === undefined ? []
          : result.preCopy.used ? [`  pre-copy: read ${humanBytes(result.preCopy.runningBytes)} while it ran, ${humanBytes(result.stoppedBytesRead)} while stopped`
            + PRE_COPY_HOW[result.preCopy.tracking] + (result.preCopy.catchUp ? `, ${humanBytes(result.preCopy.catchUp.bytes)} read again in ${result.preCopy.catchUp.rounds} catch-up pass${result.preCopy.catchUp.rounds === 1 ? '' : 'es'} before the stop` : '')
            + (result.preCopy.why !== undefined ? `: ${safeText(result.preCopy.why)}` : '')]
            : [`  pre-copy fell back to a full stop: ${safeText(result.preCopy.fallback)}`];
        cli.print(
          // The command name, mapping names in notes and the path are the target's or the
          // user's bytes: escaped, so that an "ev\x1b[2Jil" comm cannot drive the terminal.
          `captured process ${pid} (${shownName(result.comm)}) into ${safeText(a.out)}: ${writeSummaryText(result.summary)}`,
          `  ${result.mappings} mappings: ${result.dataRegions} data regions, ${result.gaps} gaps; read ${humanBytes(result.bytesRead)}; ${state}`,
          ...pre,
          ...result.notes.map((n) => `  note: ${safeText(n)}`),
        );
      }
      exit(0);
    },
  );
}

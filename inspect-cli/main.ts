/**
 * The `crimg` command line: a thin shell over the library. Each command lives in
 * commands/NAME.ts, calls the library and formats what it returns; this module wires them to
 * yargs and turns errors into one line and an exit status (see errors.ts).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createCli, type Output } from './context.js';
import { errorLine, exitCodeOf, usageError } from './errors.js';
import { packageVersion } from './version.js';
import { safeText } from './text.js';
import { registerCreate } from './commands/create.js';
import { registerInspect } from './commands/inspect.js';
import { registerVerify } from './commands/verify.js';
import { registerDump } from './commands/dump.js';
import { registerExtract } from './commands/extract.js';
import { registerStats } from './commands/stats.js';
import { registerDiff } from './commands/diff.js';
import { registerConvert } from './commands/convert.js';
import { registerCheck } from './commands/check.js';
import { registerCapture } from './commands/capture.js';
import { registerImportCore } from './commands/import-core.js';
import { registerExportCore } from './commands/export-core.js';
import { registerFlatten } from './commands/flatten.js';
import { registerOptimize } from './commands/optimize.js';

const EPILOG = `Exit status: 0 success; 1 the image is invalid, corrupt or incompatible, or the key is wrong; 2 usage or I/O error.

Environment: NO_COLOR turns colours off. CRIMG_PROGRESS=1 draws progress bars on stderr even when it is not a terminal, CRIMG_PROGRESS=0 never.

The format is specified in spec/FORMAT.md.`;

export interface MainStreams {
  stdout?: Output;
  stderr?: Output;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs the command line `argv` (without the node and script names) and returns the exit status.
 * Never throws and never calls process.exit.
 * @example await main(['inspect', 'app.img', '--json'])
 */
export async function main(argv: string[], streams: MainStreams = {}): Promise<number> {
  const stdout = streams.stdout ?? process.stdout;
  const stderr = streams.stderr ?? process.stderr;
  const cli = createCli(stdout, stderr, streams.env ?? process.env);
  let status = 0;
  const exit = (code: number): void => { status = code; };
  const parser = yargs()
    .scriptName('crimg')
    .usage('$0 <command> [options]\n\nInspect, verify, convert and create crimg memory images; capture processes; import and export ELF cores.')
    .exitProcess(false)
    .strict()
    .demandCommand(1, 'expected a command')
    .recommendCommands()
    .option('quiet', { alias: 'q', type: 'boolean', global: true, describe: 'no progress bars; commands that write files print nothing on success' })
    .option('debug', { type: 'boolean', global: true, describe: 'print a stack trace with errors' })
    .version(packageVersion())
    .help()
    .alias('help', 'h')
    .wrap(Math.min(100, stdout.columns ?? 100))
    .epilog(EPILOG)
    // Usage errors come without `err`; errors thrown by handlers come with it.
    .fail((msg, err) => { throw err ?? usageError(msg ?? 'invalid command line'); });
  for (const register of [registerCreate, registerInspect, registerVerify, registerDump, registerExtract, registerStats, registerDiff, registerConvert, registerCheck, registerCapture, registerImportCore, registerExportCore, registerFlatten, registerOptimize]) {
    register(parser, cli, exit);
  }
  try {
    // With a parse callback yargs hands over --help and --version text instead of printing it
    // with console.log, so that all output goes to the streams given.
    let text = '';
    await parser.parseAsync(argv, {}, (_err, _args, output) => { text = output; });
    if (text) stdout.write(text + '\n');
    return status;
  } catch (e) {
    stderr.write(errorLine(e) + '\n');
    if (argv.includes('--debug') && e instanceof Error && e.stack) stderr.write(e.stack.split('\n').map(safeText).join('\n') + '\n');
    return exitCodeOf(e);
  }
}

/** Runs `crimg` on process.argv and sets process.exitCode (output is flushed, not cut off). */
export async function run(): Promise<void> {
  // `crimg ... | head` closes the pipe early: stop quietly, as other Unix tools do.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await main(hideBin(process.argv));
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) await run();

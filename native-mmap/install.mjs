#!/usr/bin/env node
// Builds the native restore shim (native-mmap/build/Release/crimg_mmap.node).
//
// Run by `npm install` / `npm ci` as the package's own install script. For an
// end user it must never fail the install: the addon is an accelerator, and
// everything works without it through the portable path, so any failure
// prints one warning line (full log in native-mmap/build/install.log) and
// exits 0. Where the addon is required, in CI (CI set, as CI services do) or
// with CRIMG_REQUIRE_NATIVE=1, a failure prints the same line as an error and
// exits 1, so that a broken build cannot pass unnoticed.
//
// Offline by design: node-gyp is taken from our node_modules, and when the
// running node's own headers are installed beside it (distro and tarball
// layouts: <prefix>/include/node) they are used via --nodedir instead of
// letting node-gyp try to download a header tarball.
//
// CRIMG_NO_NATIVE=1 skips the build on purpose, required or not (and makes
// native-mmap/index.ts report the addon as absent).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const addon = path.join(here, 'build', 'Release', 'crimg_mmap.node');
const log = path.join(here, 'build', 'install.log');

/** Whether a failed build fails the install: in CI, or when asked to. */
function required() {
  if (process.env.CRIMG_REQUIRE_NATIVE === '1') return true;
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/**
 * One line saying why the addon was not built. An error and exit 1 where it is
 * required; else a warning and a successful exit: the install must go on.
 */
function skip(reason) {
  if (required()) {
    console.error(`crimg: native mmap addon not built (${reason}); it is required here (CI or CRIMG_REQUIRE_NATIVE=1)`);
    process.exit(1);
  }
  console.warn(`crimg: native mmap addon not built (${reason}); using the portable path`);
  process.exit(0);
}

/** --nodedir for the running node's own headers, if they are installed. */
function localNodedir() {
  if (process.env.npm_config_nodedir) return null;  // node-gyp reads it itself
  const prefix = path.dirname(path.dirname(process.execPath));
  try {
    const h = readFileSync(path.join(prefix, 'include', 'node', 'node_version.h'), 'utf8');
    const part = (name) => h.match(new RegExp(`#define ${name} (\\d+)`))?.[1];
    const version = `v${part('NODE_MAJOR_VERSION')}.${part('NODE_MINOR_VERSION')}.${part('NODE_PATCH_VERSION')}`;
    // node-gyp's own rule for prefix headers: only the running version's.
    return version === process.version ? prefix : null;
  } catch {
    return null;
  }
}

/** The most telling line of a failed node-gyp run, most specific first. */
function failureReason(output) {
  const lines = output.split('\n').map((l) => l.trim());
  if (lines.some((l) => /You need to install the latest version of Python/.test(l))) {
    return 'Python 3 not found, node-gyp needs it';
  }
  if (lines.some((l) => /network connectivity/.test(l))) {
    return 'no local Node headers and the download failed; set npm_config_nodedir to a Node install with include/node';
  }
  const compiler = lines.find((l) => /(^|\s)(fatal )?error:|Error: \[Errno|not found/.test(l) && !l.startsWith('gyp ERR!'));
  const stack = lines.find((l) => l.startsWith('gyp ERR! stack Error:'))?.slice('gyp ERR! stack '.length);
  return compiler ?? stack;
}

function main() {
  if (process.env.CRIMG_NO_NATIVE === '1') {
    console.warn('crimg: native mmap addon not built (CRIMG_NO_NATIVE=1); using the portable path');
    return;
  }
  if (process.platform !== 'linux') skip(`platform ${process.platform} is not supported, Linux only`);

  let nodeGyp;
  try {
    const require = createRequire(import.meta.url);
    nodeGyp = path.join(path.dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
  } catch {
    skip('node-gyp is not installed');
  }

  const args = [nodeGyp, 'rebuild', '--loglevel=warn'];
  const nodedir = localNodedir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);

  const run = spawnSync(process.execPath, args, {
    cwd: here,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 10 * 60_000, // a wedged compiler must not hang the install
    env: { ...process.env, npm_config_loglevel: 'warn' },
  });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  try {
    mkdirSync(path.dirname(log), { recursive: true });
    writeFileSync(log, `$ node ${args.join(' ')}\n${output}`);
  } catch {
    // The log is a courtesy; an unwritable tree must not fail the install.
  }

  if (run.error || run.status !== 0 || !existsSync(addon)) {
    const why = run.error?.message ?? failureReason(output) ?? `node-gyp exited with ${run.status}`;
    skip(`${why.slice(0, 160)}; log: ${path.relative(process.cwd(), log)}`);
  }
  console.log(`crimg: built ${path.relative(process.cwd(), addon)}`);
}

try {
  main();
} catch (err) {
  skip(err instanceof Error ? err.message : String(err));
}

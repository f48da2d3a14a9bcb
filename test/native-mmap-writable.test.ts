/**
 * Issue 14 item 8: every addon function that writes into a caller-given buffer (hashChunks,
 * scanChunks, aeadSeal, deflateBatch) refuses an output buffer lying, wholly or partly, in a
 * range the addon itself mapped without PROT_WRITE, with a RangeError instead of a SIGSEGV.
 * Each case runs in a child node, so a crash fails the test instead of killing jest.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { requireNative } from './native-fixture.js';

requireNative();

const addonPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'native-mmap', 'build', 'Release', 'crimg_mmap.node');

/** Runs `body` (with `A` the addon) in a child; returns its exit status, signal and output. */
function child(body: string): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const script = `const A = require(process.argv[1]);\n${body}`;
  const r = spawnSync(process.execPath, ['-e', script, addonPath], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } });
  return { status: r.status, signal: r.signal, stdout: r.stdout.trim(), stderr: r.stderr };
}

/** A child that must throw from `call` and exit 0; prints "name:code:message". */
function refused(call: string): string {
  const r = child(`try { ${call}; console.log('returned'); } catch (e) { console.log(e.name + ':' + e.code + ':' + e.message); }`);
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
  return r.stdout;
}

const RO = "A.mapAnonymous(4096,'r--')";

describe('native-mmap output buffers in read-only mappings (issue 14 item 8)', () => {
  test('the issue repro: hashChunks into a read-only mapAnonymous buffer throws cleanly', () => {
    const out = refused(`A.hashChunks(new Uint8Array(4096),4096,new BigUint64Array(${RO},0,1))`);
    expect(out).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected sums to be writable memory, got 8 bytes at 0x[0-9a-f]+ whose byte 0 lies in a 'r--' range/);
  });

  test('scanChunks: sums and zero', () => {
    expect(refused(`A.scanChunks(new Uint8Array(4096),4096,new BigUint64Array(${RO},0,1),new Uint8Array(1))`)).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected sums to be writable/);
    expect(refused(`A.scanChunks(new Uint8Array(4096),4096,new BigUint64Array(1),new Uint8Array(${RO},0,1))`)).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected zero to be writable/);
  });

  test('aeadSeal: out', () => {
    expect(refused(`A.aeadSeal(1,new Uint8Array(32),new Uint8Array(12),new Uint8Array(0),new Uint8Array(16),new Uint8Array(${RO},0,32))`)).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected out to be writable/);
    expect(refused(`A.aeadSeal(2,new Uint8Array(32),new Uint8Array(12),new Uint8Array(0),new Uint8Array(16),new Uint8Array(${RO},0,32))`)).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected out to be writable/);
  });

  test('deflateBatch: out and sizes at the call, and out protected while the job runs', () => {
    expect(refused(`A.deflateBatch(1,[new Uint8Array(100)],new Uint8Array(1),new Uint8Array(${RO},0,100),new Int32Array(1),()=>{})`)).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected out to be writable/);
    expect(refused(`A.deflateBatch(1,[new Uint8Array(100)],new Uint8Array(1),new Uint8Array(100),new Int32Array(${RO},0,1),()=>{})`)).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected sizes to be writable/);
    // Writable at the call, read-only by the time the results are copied: the callback gets the error.
    const r = child(`const b = A.mapAnonymous(4096,'rw-');
      A.deflateBatch(1,[new Uint8Array(100)],new Uint8Array(1),new Uint8Array(b,0,100),new Int32Array(1),(e)=>console.log(e ? e.code + ':' + e.message : 'no error'));
      A.protect(b,4096,'r--');`);
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(r.stdout).toMatch(/^ERR_CRIMG_DEFLATE:deflateBatch: expected out to be writable memory/);
  });

  test('a buffer only partly in a read-only range is refused; the writable part alone is accepted', () => {
    // 16 bytes straddling a rw- page and a page protected r-- afterwards.
    const setup = "const b = A.mapAnonymous(8192,'rw-'); A.protect(A.addressOf(b) + 4096n, 4096, 'r--');";
    const out = refused(`${setup} A.hashChunks(new Uint8Array(128),64,new BigUint64Array(b,4088,2))`);
    expect(out).toMatch(/^RangeError:ERR_INVALID_ARG_VALUE:expected sums to be writable memory, got 16 bytes at 0x[0-9a-f]+ whose byte 8 lies in a 'r--' range/);
    // One chunk writes only the first 8 bytes, all on the writable page.
    const r = child(`${setup} const s = new BigUint64Array(b,4088,2); A.hashChunks(new Uint8Array(64),64,s); console.log(s[0] === A.xxh64(new Uint8Array(64)));`);
    expect({ status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, signal: null, stdout: 'true', stderr: '' });
  });

  test('views and protections are tracked: r-- view refused, rw- view after it accepted, unmapped range forgotten', () => {
    const r = child(`const res = A.reserve(8192); A.placeRuns(res,-1,Float64Array.of(0,8192,-1),'rw-');
      const out = [];
      const v = A.view(res,0,8192,'r--');
      try { A.hashChunks(new Uint8Array(64),64,new BigUint64Array(v,0,1)); out.push('r-- view accepted'); } catch (e) { out.push(e.name); }
      A.unmap(v);
      const w = A.view(res,0,8192,'rw-');
      A.hashChunks(new Uint8Array(64),64,new BigUint64Array(w,0,1)); out.push('rw- view ok');
      const m = A.mapAnonymous(4096,'rw-'); A.protect(m,4096,'r--');
      try { A.scanChunks(new Uint8Array(64),64,new BigUint64Array(m,0,1),new Uint8Array(1)); out.push('protected accepted'); } catch (e) { out.push(e.name); }
      A.protect(m,4096,'rw-');
      A.scanChunks(new Uint8Array(64),64,new BigUint64Array(m,0,1),new Uint8Array(1)); out.push('unprotected ok');
      console.log(out.join(','));`);
    expect({ status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }).toEqual({
      status: 0, signal: null, stdout: 'RangeError,rw- view ok,RangeError,unprotected ok', stderr: '',
    });
  });

  test('ordinary output buffers (heap, rw- mappings) still work', () => {
    const r = child(`const m = A.mapAnonymous(4096,'rw-');
      const s = new BigUint64Array(m,0,1); A.hashChunks(new Uint8Array(4096),4096,s);
      const h = new BigUint64Array(1); A.hashChunks(new Uint8Array(4096),4096,h);
      const o = new Uint8Array(m,64,32); A.aeadSeal(1,new Uint8Array(32),new Uint8Array(12),new Uint8Array(0),new Uint8Array(16),o);
      console.log(s[0] === h[0] && s[0] === A.xxh64(new Uint8Array(4096)) && o.some((x)=>x!==0));`);
    expect({ status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, signal: null, stdout: 'true', stderr: '' });
  });
});

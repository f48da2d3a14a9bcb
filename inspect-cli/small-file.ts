/**
 * Reads a small user-named file (key, passphrase, constraints) with a size cap: a path such as
 * /dev/zero or a multi-gigabyte file must not make the CLI read forever or exhaust memory.
 */
import { open } from 'node:fs/promises';
import { CrimgError } from '../format/index.js';

/**
 * The whole file, at most `max` bytes.
 * @throws CrimgError IO_ERROR when it cannot be read; INVALID_ARGUMENT when it is larger than `max`.
 */
export async function readSmallFile(path: string, what: string, max: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new CrimgError('IO_ERROR', `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > max) throw new CrimgError('INVALID_ARGUMENT', `${what} ${path} is larger than ${max} bytes`, { hint: `a ${what} is small; check the path` });
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof CrimgError) throw e;
    throw new CrimgError('IO_ERROR', `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  } finally {
    await fh.close();
  }
}

/** The producer version the capture layer records: the package's version. */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The version in the package.json above this module (source or build tree), or "0.0.0". */
export function producerVersion(): string {
  if (cached !== undefined) return cached;
  cached = '0.0.0';
  // capture/x.ts sits one level below package.json; build/capture/x.js two levels.
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const p = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'crimg' && typeof p.version === 'string') {
        cached = p.version;
        break;
      }
    } catch {
      // try the next level
    }
  }
  return cached;
}

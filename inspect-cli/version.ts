/** The package version, from the package.json above this module (source or build tree). */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  // inspect-cli/x.ts sits one level below package.json; build/inspect-cli/x.js two levels.
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'crimg' && pkg.version) return pkg.version;
    } catch {
      // try the next level
    }
  }
  return '0.0.0';
}

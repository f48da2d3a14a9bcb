/**
 * The host description text of `crimg check --constraints FILE` and `crimg check --print-host`:
 * one `KEY=VALUE` per line, `#` comments. Special keys set the host fields of spec/FORMAT.md
 * section 4: `architecture=` and `page.size=`; `bitmap:KEY=HEX` sets a bitmap (hex bytes in
 * order); every other `KEY=VALUE` is a label. Fields the file leaves out keep this machine's
 * values. Pure.
 */
import type { HostDescription } from '../image/index.js';
import { toHex } from '../format/index.js';
import { parseBitmapHex } from './specs.js';
import { usageError } from './errors.js';

/**
 * Applies constraints text to `base` (usually describeHost()).
 * @param name the file name, for messages.
 * @throws CrimgError INVALID_ARGUMENT naming the line.
 */
export function parseConstraints(text: string, base: HostDescription, name: string): HostDescription {
  // Null-prototype records: `__proto__=x` is a label like any other, not the object's prototype.
  const host: HostDescription = {
    ...base, cpuFlags: [...base.cpuFlags],
    labels: Object.assign(Object.create(null) as Record<string, string>, base.labels),
    bitmaps: Object.assign(Object.create(null) as Record<string, Uint8Array>, base.bitmaps),
  };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const at = `${name} line ${i + 1}`;
    const eq = line.indexOf('=');
    if (eq <= 0) throw usageError(`${at}: expected KEY=VALUE, got ${JSON.stringify(line)}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === 'architecture') host.architecture = value;
    else if (key === 'page.size') {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n <= 0) throw usageError(`${at}: expected page.size as a positive integer, got ${JSON.stringify(value)}`);
      host.pageSize = n;
    } else if (key.startsWith('bitmap:')) {
      const k = key.slice('bitmap:'.length);
      if (k === '') throw usageError(`${at}: expected bitmap:KEY=HEX`);
      host.bitmaps[k] = parseBitmapHex(value, `${at} bitmap ${k}`);
    } else host.labels[key] = value;
  });
  return host;
}

/** The text form of a host description (what `crimg check --print-host` prints). */
export function formatConstraints(host: HostDescription): string {
  const lines = [
    '# crimg host description: use with `crimg check IMG --constraints FILE`',
    `architecture=${host.architecture}`,
    `page.size=${host.pageSize}`,
  ];
  for (const [k, v] of Object.entries(host.labels)) lines.push(`${k}=${v}`);
  for (const [k, v] of Object.entries(host.bitmaps)) lines.push(`bitmap:${k}=${toHex(v)}`);
  return lines.join('\n') + '\n';
}

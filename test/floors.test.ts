/**
 * The floors of the library (README "Architecture"): each folder imports only from folders on
 * lower floors, never sideways or up, so there is no cycle between folders; the CLI reaches the
 * library only through the package's public entry points; no library source file is over 600
 * lines. Reads every import of every source file (static, type-only, re-exports and dynamic).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

/** Floor of each library folder, lowest first. Two folders on one floor may not import each other. */
const FLOORS: Record<string, number> = {
  'format': 0,
  'native-mmap': 0,
  'codec': 1,
  'image': 2,
  'restore': 3,
  'capture': 4,
  'index.ts': 5,
  'inspect-cli': 6,
};

/**
 * What a folder may import from a lower one, when not everything: codec takes from the byte
 * layout only its error class, its constants and the one statement of section 5.3's chunk-form
 * rules (which the chunk table's reader shares), never a structure's encoder or decoder.
 */
const ONLY: Record<string, Record<string, readonly string[]>> = {
  codec: { format: ['format/errors.ts', 'format/constants.ts', 'format/chunk-form.ts'] },
};

/** The package's public entry points (package.json "exports"): all the CLI may import. */
const PUBLIC = ['index.ts', 'format/index.ts', 'image/index.ts', 'restore/index.ts', 'capture/index.ts', 'native-mmap/index.ts'];

/** Node built-ins the pure format floor may use: no I/O, no threads, no processes. */
const FORMAT_BUILTINS = new Set(['node:buffer']);

const MAX_LINES = 600;

export interface Edge {
  from: string;
  to: string;
  /** The specifier as written. */
  spec: string;
}

/** Every module specifier in `source`: imports, `import type`, re-exports, `import()`. */
export function specifiers(source: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]/gms,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The folder (floor key) of a repository-relative path, or null outside the library. */
export function floorOf(path: string): string | null {
  if (path === 'index.ts') return 'index.ts';
  const top = path.split('/')[0]!;
  return top in FLOORS ? top : null;
}

/** Every rule an edge breaks, as sentences; empty when the edge is allowed. */
export function problems(e: Edge): string[] {
  const a = floorOf(e.from);
  if (a === null) return [];
  const out: string[] = [];
  if (!e.spec.startsWith('.')) {
    if (a === 'format' && e.spec.startsWith('node:') && !FORMAT_BUILTINS.has(e.spec)) {
      out.push(`${e.from} imports ${e.spec}: format/ is pure (no I/O)`);
    }
    return out;
  }
  const b = floorOf(e.to);
  if (b === null) {
    out.push(`${e.from} imports ${e.to}, outside the library's floors`);
    return out;
  }
  if (a === b) return out;
  if (FLOORS[b]! >= FLOORS[a]!) out.push(`${e.from} (floor ${FLOORS[a]}, ${a}) imports ${e.to} (floor ${FLOORS[b]}, ${b}): a floor imports only from floors below it`);
  const only = ONLY[a]?.[b];
  if (only && !only.includes(e.to)) out.push(`${e.from} imports ${e.to}: ${a}/ may import only ${only.join(', ')} from ${b}/`);
  if (a === 'inspect-cli' && !PUBLIC.includes(e.to)) out.push(`${e.from} imports ${e.to}: the CLI imports only the public entry points (package.json exports)`);
  return out;
}

/** Cycles between folders in `edges` (each as "a -> b -> a"). */
export function folderCycles(edges: readonly Edge[]): string[] {
  const next = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = floorOf(e.from);
    const b = e.spec.startsWith('.') ? floorOf(e.to) : null;
    if (a && b && a !== b) (next.get(a) ?? next.set(a, new Set()).get(a)!).add(b);
  }
  const cycles: string[] = [];
  const visit = (node: string, path: string[]): void => {
    for (const n of next.get(node) ?? []) {
      const at = path.indexOf(n);
      if (at >= 0) cycles.push([...path.slice(at), n].join(' -> '));
      else visit(n, [...path, n]);
    }
  };
  for (const start of next.keys()) visit(start, [start]);
  return [...new Set(cycles)];
}

function sources(dir: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    if (name === 'node_modules' || name === 'build') continue;
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel, exts));
    else if (exts.some((x) => name.endsWith(x)) && !name.endsWith('.d.ts')) out.push(rel.split(sep).join('/'));
  }
  return out;
}

function libraryFiles(): string[] {
  return ['index.ts', ...Object.keys(FLOORS).filter((f) => f !== 'index.ts').flatMap((d) => sources(d, ['.ts']))];
}

function edgesOf(file: string): Edge[] {
  return specifiers(readFileSync(join(ROOT, file), 'utf8')).map((spec) => ({
    from: file,
    spec,
    to: spec.startsWith('.') ? normalize(join(dirname(file), spec)).split(sep).join('/').replace(/\.js$/, '.ts') : spec,
  }));
}

describe('the rule checker itself', () => {
  test('finds every kind of import in source text', () => {
    const text = [
      "import { a } from '../format/errors.js';",
      "import type { B } from '../image/reader.js';",
      "export { c } from './c.js';",
      "export * from '../codec/aead.js';",
      "import {\n  d,\n  e,\n} from '../restore/restore.js';",
      "const m = await import('../capture/index.js');",
      "import 'node:fs';",
      "// a comment about import('./not-real.js') still counts: better too strict than blind",
    ].join('\n');
    expect(specifiers(text).sort()).toEqual(['../format/errors.js', '../image/reader.js', './c.js', '../codec/aead.js', '../restore/restore.js', '../capture/index.js', 'node:fs', './not-real.js'].sort());
  });

  test('refuses an edge up or sideways, a CLI import of an internal, I/O in format, and a folder cycle', () => {
    expect(problems({ from: 'format/header.ts', to: 'codec/checksum.ts', spec: '../codec/checksum.js' })).toHaveLength(1);
    expect(problems({ from: 'format/header.ts', to: 'native-mmap/index.ts', spec: '../native-mmap/index.js' })).toHaveLength(1);
    expect(problems({ from: 'image/reader.ts', to: 'restore/restore.ts', spec: '../restore/restore.js' })).toHaveLength(1);
    expect(problems({ from: 'codec/chunk.ts', to: 'format/header.ts', spec: '../format/header.js' })).toHaveLength(1);
    expect(problems({ from: 'inspect-cli/commands/stats.ts', to: 'format/constants.ts', spec: '../../format/constants.js' })).toHaveLength(1);
    expect(problems({ from: 'format/header.ts', to: 'node:fs', spec: 'node:fs' })).toHaveLength(1);
    expect(problems({ from: 'restore/restore.ts', to: 'image/reader.ts', spec: '../image/reader.js' })).toEqual([]);
    expect(problems({ from: 'inspect-cli/open.ts', to: 'restore/index.ts', spec: '../restore/index.js' })).toEqual([]);
    expect(folderCycles([
      { from: 'image/reader.ts', to: 'restore/restore.ts', spec: '../restore/restore.js' },
      { from: 'restore/restore.ts', to: 'image/reader.ts', spec: '../image/reader.js' },
    ])).toEqual(expect.arrayContaining(['image -> restore -> image']));
  });
});

describe('the library as it is', () => {
  const files = libraryFiles();
  const edges = files.flatMap(edgesOf);

  test('reads a real tree: every floor has files and imports', () => {
    for (const floor of Object.keys(FLOORS)) expect({ floor, files: files.some((f) => floorOf(f) === floor) }).toEqual({ floor, files: true });
    expect(edges.length).toBeGreaterThan(200);
  });

  test('every import points down the floors (or within a folder), and the CLI uses only public entry points', () => {
    expect(edges.flatMap(problems)).toEqual([]);
  });

  test('no cycle between folders', () => {
    expect(folderCycles(edges)).toEqual([]);
  });

  test('no import cycle between the files of restore/ (their shared types are in restore/_types.ts)', () => {
    const next = new Map<string, string[]>();
    for (const e of edges) if (e.from.startsWith('restore/') && e.to.startsWith('restore/')) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
    const cycles: string[] = [];
    const visit = (node: string, path: string[]): void => {
      for (const n of next.get(node) ?? []) {
        if (path.includes(n)) cycles.push([...path.slice(path.indexOf(n)), n].join(' -> '));
        else visit(n, [...path, n]);
      }
    };
    for (const start of next.keys()) visit(start, [start]);
    expect(cycles).toEqual([]);
  });

  test('every relative import names a file that exists', () => {
    const missing = edges.filter((e) => e.spec.startsWith('.') && !files.includes(e.to) && !sources(dirname(e.to), ['.ts', '.js', '.mjs']).includes(e.to));
    expect(missing).toEqual([]);
  });

  test(`no library source file is over ${MAX_LINES} lines`, () => {
    const all = [...files, ...sources('native-mmap/src', ['.cc', '.h']), 'native-mmap/install.mjs'];
    const long = all
      .map((f) => ({ file: f, lines: readFileSync(join(ROOT, f), 'utf8').split('\n').length - 1 }))
      .filter((x) => x.lines > MAX_LINES);
    expect(long).toEqual([]);
  });

  test('the public entry points are the package.json exports', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { default: string }> };
    const targets = Object.values(pkg.exports)
      .map((v) => (typeof v === 'string' ? v : v.default))
      .filter((t) => t.startsWith('./build/'))
      .map((t) => relative('build', t.slice(2)).replace(/\.js$/, '.ts'));
    expect(targets.sort()).toEqual([...PUBLIC].sort());
  });
});

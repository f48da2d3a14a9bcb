/**
 * The restoring host as restore constraints see it (spec/FORMAT.md section 4): architecture,
 * page size, and the `cpu.features` bitmap from /proc/cpuinfo.
 */
import { readFileSync } from 'node:fs';
import { machine } from 'node:os';

/**
 * Bit numbering of the `cpu.features` bitmap: position in this table. Append only: a bit's
 * meaning never changes, so images stay comparable across versions. x86 names are those of
 * /proc/cpuinfo "flags"; aarch64 names those of its "Features" line.
 */
export const CPU_FEATURES: readonly string[] = [
  // x86 (0..)
  'fpu', 'vme', 'de', 'pse', 'tsc', 'msr', 'pae', 'mce', 'cx8', 'apic', 'sep', 'mtrr', 'pge', 'mca', 'cmov',
  'pat', 'pse36', 'clflush', 'mmx', 'fxsr', 'sse', 'sse2', 'ht', 'syscall', 'nx', 'mmxext', 'fxsr_opt',
  'pdpe1gb', 'rdtscp', 'lm', 'pni', 'pclmulqdq', 'ssse3', 'fma', 'cx16', 'pcid', 'sse4_1', 'sse4_2',
  'x2apic', 'movbe', 'popcnt', 'aes', 'xsave', 'avx', 'f16c', 'rdrand', 'hypervisor', 'lahf_lm',
  'cmp_legacy', 'abm', 'sse4a', 'misalignsse', '3dnowprefetch', 'xop', 'fma4', 'tbm', 'fsgsbase',
  'bmi1', 'hle', 'avx2', 'smep', 'bmi2', 'erms', 'invpcid', 'rtm', 'mpx', 'avx512f', 'avx512dq',
  'rdseed', 'adx', 'smap', 'avx512ifma', 'clflushopt', 'clwb', 'avx512pf', 'avx512er', 'avx512cd',
  'sha_ni', 'avx512bw', 'avx512vl', 'xsaveopt', 'xsavec', 'xgetbv1', 'xsaves', 'avx512vbmi', 'umip',
  'pku', 'ospke', 'avx512_vbmi2', 'gfni', 'vaes', 'vpclmulqdq', 'avx512_vnni', 'avx512_bitalg',
  'avx512_vpopcntdq', 'rdpid', 'movdiri', 'movdir64b', 'avx512_bf16', 'avx_vnni', 'amx_tile',
  'amx_bf16', 'amx_int8', 'serialize', 'tsxldtrk', 'avx512_fp16', 'clzero', 'wbnoinvd', 'lzcnt',
  // aarch64
  'asimd', 'aes', 'pmull', 'sha1', 'sha2', 'crc32', 'atomics', 'fphp', 'asimdhp', 'cpuid', 'asimdrdm',
  'jscvt', 'fcma', 'lrcpc', 'dcpop', 'sha3', 'sm3', 'sm4', 'asimddp', 'sha512', 'sve', 'asimdfhm',
  'dit', 'uscat', 'ilrcpc', 'flagm', 'ssbs', 'sb', 'paca', 'pacg', 'sve2', 'bf16', 'i8mm', 'bti',
];

/** What a host offers to an image's restore constraints. */
export interface HostDescription {
  architecture: string;
  pageSize: number;
  labels: Record<string, string>;
  bitmaps: Record<string, Uint8Array>;
  /** CPU feature names found on the host (for messages). */
  cpuFlags: string[];
}

/** Bitmap of feature names by their position in {@link CPU_FEATURES}; unknown names are left out. */
export function featureBitmap(names: Iterable<string>): Uint8Array {
  const bits = new Uint8Array(Math.ceil(CPU_FEATURES.length / 8));
  const set = new Set(names);
  CPU_FEATURES.forEach((n, i) => {
    if (set.has(n)) bits[i >> 3]! |= 1 << (i & 7);
  });
  return bits;
}

/** Feature name of bit `i` of `cpu.features`, or `bit N`. */
export function featureName(i: number): string {
  return CPU_FEATURES[i] ?? `bit ${i}`;
}

/** The CPU flags of /proc/cpuinfo's first processor (x86 "flags", aarch64 "Features"). */
export function readCpuFlags(cpuinfo?: string): string[] {
  let text = cpuinfo;
  if (text === undefined) {
    try { text = readFileSync('/proc/cpuinfo', 'utf8'); } catch { return []; }
  }
  const m = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text);
  return m ? m[1]!.trim().split(/\s+/) : [];
}

/** The system page size. Reads the auxiliary vector; 4096 when unknown. */
export function hostPageSize(): number {
  try {
    const auxv = readFileSync('/proc/self/auxv');
    for (let o = 0; o + 16 <= auxv.length; o += 16) {
      const type = auxv.readBigUInt64LE(o);
      if (type === 6n) return Number(auxv.readBigUInt64LE(o + 8)); // AT_PAGESZ
      if (type === 0n) break;
    }
  } catch { /* not Linux */ }
  return 4096;
}

/**
 * Describes the current host: `uname -m` architecture, page size, `cpu.features` bitmap.
 * @param labels host labels to compare with the image's (e.g. an engine name).
 */
export function describeHost(labels: Record<string, string> = {}): HostDescription {
  const cpuFlags = readCpuFlags();
  return {
    architecture: machine(),
    pageSize: hostPageSize(),
    labels: { ...labels },
    bitmaps: { 'cpu.features': featureBitmap(cpuFlags) },
    cpuFlags,
  };
}

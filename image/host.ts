/**
 * The restoring host as restore constraints see it (spec/FORMAT.md section 4): architecture,
 * page size, and the `cpu.features` bitmap from /proc/cpuinfo (x86 "flags", aarch64 "Features").
 */
import { readFileSync } from 'node:fs';
import { machine } from 'node:os';

/** The architectures whose CPU flags `cpu.features` names (`uname -m` names). */
export type CpuArchitecture = 'x86_64' | 'aarch64';

/** One bit of the `cpu.features` bitmap: a flag name as /proc/cpuinfo prints it, and its architecture. */
export interface CpuFeature {
  readonly name: string;
  readonly architecture: CpuArchitecture;
}

// The bits as first published (0..142). Images exist with them: never move or remove one.
const X86_FIRST = [
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
];
const AARCH64_FIRST = [
  'asimd', 'aes', 'pmull', 'sha1', 'sha2', 'crc32', 'atomics', 'fphp', 'asimdhp', 'cpuid', 'asimdrdm',
  'jscvt', 'fcma', 'lrcpc', 'dcpop', 'sha3', 'sm3', 'sm4', 'asimddp', 'sha512', 'sve', 'asimdfhm',
  'dit', 'uscat', 'ilrcpc', 'flagm', 'ssbs', 'sb', 'paca', 'pacg', 'sve2', 'bf16', 'i8mm', 'bti',
];
// Appended (143..): the rest of what /proc/cpuinfo prints. x86: every name of a feature word
// of the kernel's arch/x86/include/asm/cpufeatures.h that is shown (a quoted name in its
// comment), in word order, and three that older kernels showed (invpcid_single, pcommit,
// eagerfpu); the bug words are the "bugs" line, not flags. aarch64: hwcap_str[] of
// arch/arm64/kernel/cpuinfo.c, in order.
const X86_MORE = [
  'pn', 'dts', 'acpi', 'ss', 'tm', 'ia64', 'pbe', 'mp', '3dnowext', '3dnow', 'recovery', 'longrun', 'lrti',
  'cxmmx', 'k6_mtrr', 'cyrix_arr', 'centaur_mcr', 'constant_tsc', 'up', 'art', 'arch_perfmon', 'pebs', 'bts',
  'rep_good', 'amd_lbr_v2', 'acc_power', 'nopl', 'xtopology', 'tsc_reliable', 'nonstop_tsc', 'cpuid',
  'extd_apicid', 'amd_dcm', 'aperfmperf', 'rapl', 'nonstop_tsc_s3', 'tsc_known_freq', 'dtes64', 'monitor',
  'ds_cpl', 'vmx', 'smx', 'est', 'tm2', 'cid', 'sdbg', 'xtpr', 'pdcm', 'dca', 'tsc_deadline_timer', 'rng',
  'rng_en', 'ace', 'ace_en', 'ace2', 'ace2_en', 'phe', 'phe_en', 'pmm', 'pmm_en', 'svm', 'extapic',
  'cr8_legacy', 'osvw', 'ibs', 'skinit', 'wdt', 'lwp', 'tce', 'nodeid_msr', 'topoext', 'perfctr_core',
  'perfctr_nb', 'bpext', 'ptsc', 'perfctr_llc', 'mwaitx', 'ring3mwait', 'cpuid_fault', 'cpb', 'epb', 'cat_l3',
  'cat_l2', 'cdp_l3', 'tdx_host_platform', 'hw_pstate', 'proc_feedback', 'pti', 'intel_ppin', 'cdp_l2',
  'ssbd', 'mba', 'perfmon_v2', 'ibrs', 'ibpb', 'stibp', 'ibrs_enhanced', 'tpr_shadow', 'flexpriority', 'ept',
  'vpid', 'vmmcall', 'ept_ad', 'tdx_guest', 'tsc_adjust', 'sgx', 'cqm', 'rdt_a', 'intel_pt', 'cqm_llc',
  'cqm_occup_llc', 'cqm_mbm_total', 'cqm_mbm_local', 'split_lock_detect', 'user_shstk', 'fred', 'lam',
  'irperf', 'xsaveerptr', 'rdpru', 'amd_ppin', 'virt_ssbd', 'cppc', 'brs', 'dtherm', 'ida', 'arat', 'pln',
  'pts', 'hwp', 'hwp_notify', 'hwp_act_window', 'hwp_epp', 'hwp_pkg_req', 'hfi', 'npt', 'lbrv', 'svm_lock',
  'nrip_save', 'tsc_scale', 'vmcb_clean', 'flushbyasid', 'decodeassists', 'pausefilter', 'pfthreshold',
  'avic', 'v_vmsave_vmload', 'vgif', 'x2avic', 'v_spec_ctrl', 'vnmi', 'waitpkg', 'tme', 'la57',
  'bus_lock_detect', 'cldemote', 'enqcmd', 'sgx_lc', 'overflow_recov', 'succor', 'smca', 'avx512_4vnniw',
  'avx512_4fmaps', 'fsrm', 'avx512_vp2intersect', 'md_clear', 'pconfig', 'arch_lbr', 'ibt', 'flush_l1d',
  'arch_capabilities', 'sme', 'sev', 'sev_es', 'sev_snp', 'debug_swap', 'svsm', 'amd_lbr_pmc_freeze',
  'invpcid_single', 'pcommit', 'eagerfpu',
];
const AARCH64_MORE = [
  'fp', 'evtstrm', 'gcs', 'dcpodp', 'sveaes', 'svepmull', 'svebitperm', 'svesha3', 'svesm4', 'flagm2',
  'frint', 'svei8mm', 'svef32mm', 'svef64mm', 'svebf16', 'dgh', 'rng', 'mte', 'ecv', 'afp', 'rpres', 'mte3',
  'sme', 'smei16i64', 'smef64f64', 'smei8i32', 'smef16f32', 'smeb16f32', 'smef32f32', 'smefa64', 'wfxt',
  'ebf16', 'sveebf16', 'cssc', 'rprfm', 'sve2p1', 'sme2', 'sme2p1', 'smei16i32', 'smebi32i32', 'smeb16b16',
  'smef16f16', 'mops', 'hbc', 'sveb16b16', 'lrcpc3', 'lse128', 'fpmr', 'lut', 'faminmax', 'f8cvt', 'f8fma',
  'f8dp4', 'f8dp2', 'f8e4m3', 'f8e5m2', 'smelutv2', 'smef8f16', 'smef8f32', 'smesf8fma', 'smesf8dp4',
  'smesf8dp2', 'poe', 'cmpbr', 'fprcvt', 'f8mm8', 'f8mm4', 'svef16mm', 'sveeltperm', 'sveaes2', 'svebfscale',
  'sve2p2', 'sme2p2', 'smesbitperm', 'smeaes', 'smesfexpa', 'smestmop', 'smesmop4',
];

/**
 * The `cpu.features` bitmap's bits in order: bit `i` is flag `CPU_FEATURE_TABLE[i]`. One bit per
 * flag per architecture: x86 `aes` (bit 41) and aarch64 `aes` (bit 110) are two bits, and a
 * host sets only the bits of its own architecture. Append only: a bit's meaning never changes,
 * so images stay comparable across versions.
 */
export const CPU_FEATURE_TABLE: readonly CpuFeature[] = Object.freeze([
  ...X86_FIRST.map((name) => ({ name, architecture: 'x86_64' as const })),
  ...AARCH64_FIRST.map((name) => ({ name, architecture: 'aarch64' as const })),
  ...X86_MORE.map((name) => ({ name, architecture: 'x86_64' as const })),
  ...AARCH64_MORE.map((name) => ({ name, architecture: 'aarch64' as const })),
]);

/** The flag name of each bit of {@link CPU_FEATURE_TABLE}, in order. */
export const CPU_FEATURES: readonly string[] = Object.freeze(CPU_FEATURE_TABLE.map((f) => f.name));

/** Bits of the table as first published, when a flag set every bit of its name (both architectures). */
const FIRST_TABLE_BITS = X86_FIRST.length + AARCH64_FIRST.length;

/** What a host offers to an image's restore constraints. */
export interface HostDescription {
  architecture: string;
  pageSize: number;
  labels: Record<string, string>;
  bitmaps: Record<string, Uint8Array>;
  /** CPU feature names found on the host (for messages). */
  cpuFlags: string[];
}

/**
 * Bitmap of flag names by their bits in {@link CPU_FEATURE_TABLE}: the bits of `architecture`'s
 * flags only; unknown names (and architectures) are left out. It ends with its last non-zero
 * byte (at least one byte): bits beyond a bitmap's end count as zero (spec/FORMAT.md section 4).
 * @param architecture whose flags `names` are; default this host's (`uname -m`).
 * @example
 * featureBitmap(['sse2', 'aes'], 'x86_64'); // bits 21 and 41, not aarch64's aes (110): 6 bytes
 */
export function featureBitmap(names: Iterable<string>, architecture: string = machine()): Uint8Array {
  const bits = new Uint8Array(Math.ceil(CPU_FEATURE_TABLE.length / 8));
  const set = new Set(names);
  let end = 1;
  CPU_FEATURE_TABLE.forEach((f, i) => {
    if (f.architecture !== architecture || !set.has(f.name)) return;
    bits[i >> 3]! |= 1 << (i & 7);
    end = Math.max(end, (i >> 3) + 1);
  });
  return bits.slice(0, end);
}

/**
 * What a host of `architecture` whose `cpu.features` bitmap is `bits` offers to an image's
 * bitmap: its bits, and the bits that images written before one bit per flag per architecture
 * set for its flags under the other architecture's bit of the same name (x86 `aes` and
 * `cpuid` set aarch64 bits 110 and 118; aarch64 `aes` x86 bit 41), so that those images
 * still match the hosts that wrote them. Images written now never set them.
 */
export function offeredFeatures(bits: Uint8Array, architecture: string): Uint8Array {
  const out = new Uint8Array(Math.max(bits.length, Math.ceil(FIRST_TABLE_BITS / 8)));
  out.set(bits);
  const has = (i: number): boolean => ((bits[i >> 3] ?? 0) >> (i & 7) & 1) === 1;
  for (let old = 0; old < FIRST_TABLE_BITS; old++) {
    const f = CPU_FEATURE_TABLE[old]!;
    if (f.architecture === architecture) continue;
    const own = CPU_FEATURE_TABLE.findIndex((g) => g.architecture === architecture && g.name === f.name);
    if (own >= 0 && has(own)) out[old >> 3]! |= 1 << (old & 7);
  }
  return out;
}

/** Flag name of bit `i` of `cpu.features` (its architecture is {@link CPU_FEATURE_TABLE}'s), or `bit N`. */
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
  const architecture = machine();
  return {
    architecture,
    pageSize: hostPageSize(),
    labels: { ...labels },
    bitmaps: { 'cpu.features': featureBitmap(cpuFlags, architecture) },
    cpuFlags,
  };
}

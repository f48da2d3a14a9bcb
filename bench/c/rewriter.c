/*
 * A process that rewrites its memory while it is captured (issue 19: pre-copy, parent images;
 * test/capture-precopy.test.ts and bench/capture.ts). Prints one JSON line on stdout, then
 * answers commands on stdin until end of file, so it never outlives the process that started it.
 *
 *   rewriter MIB PAGES_PER_SECOND [DATA_FILE]
 *
 * gen:    a MIB MiB anonymous mapping of `pages` pages, filled from DATA_FILE (repeated) when
 *         given, else every page written with zeros (present, generation 0). A writer thread takes generation g = 1, 2, 3...,
 *         fills every 8-byte word of page page_of(g) with g, then stores g in the header page
 *         (release order): the page map of writes is a pure function of g, so a reader that
 *         knows the header's generation G knows each page's generation (the last g <= G that
 *         wrote it; the page of G + 1 may already hold G + 1). PAGES_PER_SECOND pages are
 *         rewritten per second, in steps every millisecond (0: as fast as it can).
 * header: one page: "GENHEAD\0", the generation last completed, the page count, gen's address.
 * zap:    64 KiB, every byte 'Z'; `z` on stdin drops its pages (MADV_DONTNEED: zeros again).
 * gone:   64 KiB, every byte 'U'; `u` on stdin unmaps it.
 *         `n` on stdin maps 64 KiB more, "NEWMAP" at its start and 'N' after.
 * kw:     64 KiB, every byte 'K'; `k` on stdin has the kernel write its second page: 4096 bytes
 *         of 'W' go through a pipe and read(2) copies them in (a write no user instruction does).
 * With REWRITER_NO_UFFD=1 in the environment, a seccomp filter makes userfaultfd(2) fail with
 * ENOSYS in every thread (a sandboxed process: pre-copy cannot use write protection there).
 *         `p` on stdin pauses the writer thread, `r` resumes it.
 * Each command is answered with one JSON line once done.
 *
 * page_of(g) = splitmix64(g) % pages (test/capture-precopy.test.ts computes it too).
 *
 * Built with: gcc -O2 -pthread -o rewriter rewriter.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define SMALL (64u * 1024u)

struct header {
  char magic[8];
  uint64_t gen;
  uint64_t pages;
  uint64_t base;
};

static struct header *hdr;
static uint64_t *gen_base;
static uint64_t pages;
static long per_second;
static int paused;
static int idle;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void *anon(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

static void forbid_userfaultfd(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("prctl");
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) die("seccomp");
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void write_gen(uint64_t g) {
  uint64_t *w = gen_base + (splitmix64(g) % pages) * (PAGE / 8);
  for (unsigned i = 0; i < PAGE / 8; i++) w[i] = g;
  __atomic_store_n(&hdr->gen, g, __ATOMIC_RELEASE);
}

static void *writer(void *arg) {
  (void)arg;
  uint64_t g = 0;
  double owed = 0;
  for (;;) {
    if (__atomic_load_n(&paused, __ATOMIC_ACQUIRE)) {
      __atomic_store_n(&idle, 1, __ATOMIC_RELEASE);
      usleep(1000);
      continue;
    }
    if (per_second == 0) {
      write_gen(++g);
      continue;
    }
    owed += (double)per_second / 1000.0;
    while (owed >= 1) {
      write_gen(++g);
      owed -= 1;
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: rewriter MIB PAGES_PER_SECOND [DATA_FILE]\n");
    return 2;
  }
  size_t len = (size_t)strtoul(argv[1], NULL, 10) * 1024 * 1024;
  per_second = strtol(argv[2], NULL, 10);
  pages = len / PAGE;
  if (pages == 0) die("size");
  hdr = anon(PAGE);
  memcpy(hdr->magic, "GENHEAD", 8);
  gen_base = anon(len);
  hdr->pages = pages;
  hdr->base = (uint64_t)(uintptr_t)gen_base;
  if (argc == 4) {
    int fd = open(argv[3], O_RDONLY);
    if (fd < 0) die("open");
    size_t done = 0;
    while (done < len) {
      ssize_t n = pread(fd, (char *)gen_base + done, len - done, 0);
      if (n <= 0) die("read");
      done += (size_t)n;
    }
    close(fd);
  } else {
    /* Every page present, holding generation 0 (zeros). */
    for (size_t i = 0; i < len; i += PAGE) ((volatile uint64_t *)gen_base)[i / 8] = 0;
  }
  unsigned char *zap = anon(SMALL);
  memset(zap, 'Z', SMALL);
  unsigned char *gone = anon(SMALL);
  memset(gone, 'U', SMALL);
  unsigned char *kw = anon(SMALL);
  memset(kw, 'K', SMALL);
  if (getenv("REWRITER_NO_UFFD")) forbid_userfaultfd();

  pthread_t t;
  if (pthread_create(&t, NULL, writer, NULL) != 0) die("pthread_create");
  printf("{\"pid\":%d,\"header\":\"%p\",\"gen\":\"%p\",\"pages\":%llu,\"zap\":\"%p\",\"gone\":\"%p\",\"kw\":\"%p\"}\n", (int)getpid(),
         (void *)hdr, (void *)gen_base, (unsigned long long)pages, (void *)zap, (void *)gone, (void *)kw);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) == 1) {
    if (c == 'z') {
      if (madvise(zap, SMALL, MADV_DONTNEED) != 0) die("madvise");
      printf("{\"zapped\":\"%p\"}\n", (void *)zap);
    } else if (c == 'u') {
      if (munmap(gone, SMALL) != 0) die("munmap");
      printf("{\"unmapped\":\"%p\"}\n", (void *)gone);
    } else if (c == 'n') {
      unsigned char *m = anon(SMALL);
      memset(m, 'N', SMALL);
      memcpy(m, "NEWMAP", 6);
      printf("{\"mapped\":\"%p\"}\n", (void *)m);
    } else if (c == 'k') {
      int fds[2];
      char w[PAGE];
      memset(w, 'W', PAGE);
      if (pipe(fds) != 0 || write(fds[1], w, PAGE) != PAGE || read(fds[0], kw + PAGE, PAGE) != PAGE) die("pipe");
      close(fds[0]);
      close(fds[1]);
      printf("{\"kernel\":\"%p\"}\n", (void *)(kw + PAGE));
    } else if (c == 'p') {
      __atomic_store_n(&idle, 0, __ATOMIC_RELEASE);
      __atomic_store_n(&paused, 1, __ATOMIC_RELEASE);
      while (!__atomic_load_n(&idle, __ATOMIC_ACQUIRE)) usleep(100); /* the write under way ends */
      printf("{\"paused\":%llu}\n", (unsigned long long)__atomic_load_n(&hdr->gen, __ATOMIC_ACQUIRE));
    } else if (c == 'r') {
      __atomic_store_n(&paused, 0, __ATOMIC_RELEASE);
      printf("{\"resumed\":true}\n");
    } else {
      continue;
    }
    fflush(stdout);
  }
  return 0;
}

// The floor of lazy restore's working-set figure on this machine, decode left out: a region of
// MIB MiB in 4 KiB pages registered with userfaultfd, a handler thread that answers each fault
// with one bare UFFDIO_COPY of an already-made chunk (no read, no check, no decode), and this
// thread reading one byte of every page of the chunks listed in SET (u32 chunk numbers, in the
// order to touch them), as bench/lazy.ts's working set does. Prints the milliseconds of each of
// RUNS runs (a fresh region each) and the faults the handler served, one line per run:
//   ms faults
// Usage: uffd_floor MIB CHUNK SET RUNS   (root, or vm.unprivileged_userfaultfd=1)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static size_t chunk;
static uint8_t* source;
static int uffd;
static volatile int stop;
static long served;

static void die(const char* what) {
  fprintf(stderr, "uffd_floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void* handler(void* arg) {
  (void)arg;
  while (!stop) {
    struct pollfd p = {uffd, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;
    struct uffd_msg msg;
    if (read(uffd, &msg, sizeof msg) != sizeof msg) continue;
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    struct uffdio_copy c = {0};
    c.dst = msg.arg.pagefault.address & ~(uint64_t)(chunk - 1);
    c.src = (uint64_t)(uintptr_t)source;
    c.len = chunk;
    if (ioctl(uffd, UFFDIO_COPY, &c) != 0 && errno != EEXIST) die("UFFDIO_COPY");
    served++;
  }
  return NULL;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: uffd_floor MIB CHUNK SET RUNS\n");
    return 2;
  }
  const size_t length = (size_t)atol(argv[1]) << 20;
  chunk = (size_t)atol(argv[2]);
  const int runs = atoi(argv[4]);
  if (length == 0 || chunk < 4096 || chunk % 4096 != 0 || length % chunk != 0 || runs < 1) {
    fprintf(stderr, "uffd_floor: MIB, CHUNK (a multiple of 4096 dividing MIB MiB) and RUNS must be positive\n");
    return 2;
  }
  FILE* f = fopen(argv[3], "rb");
  if (f == NULL) die("open SET");
  uint32_t* set = malloc(length / chunk * sizeof *set);
  source = aligned_alloc(4096, chunk);
  if (set == NULL || source == NULL) die("malloc");
  const size_t n = fread(set, sizeof *set, length / chunk, f);
  fclose(f);
  for (size_t i = 0; i < n; i++) {
    if ((size_t)set[i] >= length / chunk) {
      fprintf(stderr, "uffd_floor: chunk %u is past the region\n", set[i]);
      return 2;
    }
  }
  for (size_t i = 0; i < chunk; i++) source[i] = (uint8_t)(i * 131 + 7);
  volatile unsigned sink = 0;
  for (int r = 0; r < runs; r++) {
    uint8_t* m = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) die("mmap");
    if (madvise(m, length, MADV_NOHUGEPAGE) != 0) die("madvise");
    uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) die("userfaultfd");
    struct uffdio_api api = {.api = UFFD_API};
    if (ioctl(uffd, UFFDIO_API, &api) != 0) die("UFFDIO_API");
    struct uffdio_register reg = {.range = {(uint64_t)(uintptr_t)m, length}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) die("UFFDIO_REGISTER");
    stop = 0;
    served = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, handler, NULL) != 0) die("pthread_create");
    const double t0 = now_ms();
    for (size_t i = 0; i < n; i++) {
      const uint8_t* c = m + (size_t)set[i] * chunk;
      for (size_t p = 0; p < chunk; p += 4096) sink += c[p];
    }
    const double ms = now_ms() - t0;
    stop = 1;
    pthread_join(t, NULL);
    printf("%.2f %ld\n", ms, served);
    close(uffd);
    munmap(m, length);
  }
  return sink == 0xffffffffu;
}

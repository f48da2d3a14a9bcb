/*
 * Baseline for bench/restore-map.ts: what a C restorer does with the same file, timed from
 * inside, so process start is not counted. Prints one JSON object on stdout.
 *
 *   mmap_touch whole FILE
 *     mmap the whole file MAP_PRIVATE, read one byte of every page.
 *   mmap_touch runs FILE PLAN [touch]
 *     the placements crimg's map mode makes, from PLAN (little-endian u64 words: region count,
 *     then per region: span, run count, then per run: offset, length, file offset as i64, -1
 *     for anonymous): reserve each region PROT_NONE, place each run with MAP_FIXED, then, with
 *     "touch", read one byte of every page of every region.
 *
 * Built by the benchmark with: gcc -O2 -o mmap_touch mmap_touch.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Reads one byte of every page; the sum keeps the compiler from dropping the loads. */
static uint64_t touch(const volatile unsigned char *p, size_t length, size_t page) {
  uint64_t sum = 0;
  for (size_t o = 0; o < length; o += page) sum += p[o];
  return sum;
}

static int whole(const char *file) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  int fd = open(file, O_RDONLY);
  if (fd < 0) die("open");
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  const size_t length = (size_t)st.st_size;
  double t0 = now();
  unsigned char *p = mmap(NULL, length, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) die("mmap");
  double t1 = now();
  uint64_t sum = touch(p, length, page);
  double t2 = now();
  munmap(p, length);
  close(fd);
  printf("{\"mapSeconds\":%.9f,\"touchSeconds\":%.9f,\"pages\":%zu,\"sum\":%llu}\n", t1 - t0, t2 - t1,
         (length + page - 1) / page, (unsigned long long)sum);
  return 0;
}

static int runs(const char *file, const char *plan_path, int do_touch) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  int pf = open(plan_path, O_RDONLY);
  if (pf < 0) die("open plan");
  struct stat st;
  if (fstat(pf, &st) != 0) die("fstat plan");
  uint64_t *plan = malloc((size_t)st.st_size);
  if (!plan || read(pf, plan, (size_t)st.st_size) != st.st_size) die("read plan");
  close(pf);
  int fd = open(file, O_RDONLY);
  if (fd < 0) die("open");
  const uint64_t regions = plan[0];
  unsigned char **bases = calloc(regions, sizeof *bases);
  uint64_t *spans = calloc(regions, sizeof *spans);
  size_t placements = 0, pages = 0;
  double t0 = now();
  size_t w = 1;
  for (uint64_t r = 0; r < regions; r++) {
    const uint64_t span = plan[w++], n = plan[w++];
    unsigned char *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) die("reserve");
    for (uint64_t i = 0; i < n; i++, w += 3) {
      const uint64_t offset = plan[w], length = plan[w + 1];
      const int64_t file_offset = (int64_t)plan[w + 2];
      void *p = file_offset < 0
          ? mmap(base + offset, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0)
          : mmap(base + offset, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)file_offset);
      if (p == MAP_FAILED) die("place");
      placements++;
    }
    bases[r] = base;
    spans[r] = span;
    pages += span / page;
  }
  double t1 = now();
  uint64_t sum = 0;
  if (do_touch)
    for (uint64_t r = 0; r < regions; r++) sum += touch(bases[r], spans[r], page);
  double t2 = now();
  for (uint64_t r = 0; r < regions; r++) munmap(bases[r], spans[r]);
  close(fd);
  printf("{\"mapSeconds\":%.9f,\"touchSeconds\":%.9f,\"placements\":%zu,\"pages\":%zu,\"sum\":%llu}\n", t1 - t0,
         t2 - t1, placements, pages, (unsigned long long)sum);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "whole") == 0) return whole(argv[2]);
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "runs") == 0)
    return runs(argv[2], argv[3], argc == 5 && strcmp(argv[4], "touch") == 0);
  fprintf(stderr, "usage: mmap_touch whole FILE | mmap_touch runs FILE PLAN [touch]\n");
  return 2;
}

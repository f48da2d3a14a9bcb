/*
 * A process holding a known data set, for the capture tests, the demo and bench/capture.ts.
 * It prints one JSON line on stdout (its pid and the addresses of what it holds), then waits
 * until stdin reaches end of file, so it never outlives the process that started it.
 *
 *   memfill pattern SEED
 *     heap:  a 1 MiB malloc'd block from the brk heap ([heap] in /proc/PID/maps);
 *     mmap:  a 4 MiB anonymous mapping whose page 256 is then made PROT_NONE (a guard page:
 *            the maps show rw-p, ---p, rw-p);
 *     stack: a 64 KiB array on the main thread's stack;
 *     short: a 3-page shared mapping of a deleted 1-page temporary file filled with 0x5a: the
 *            two pages past the end of the file cannot be read (SIGBUS in the process, EIO
 *            through /proc/PID/mem).
 *     Each block's 4-byte words are the successive values of xorshift32 (13, 17, 5) seeded
 *     with SEED * 0x9e3779b9 + TAG (TAG: heap 1, mmap 2, stack 3; a zero seed becomes 1),
 *     except that every fourth page of the block (page index % 4 == 3) is zero: the generator
 *     still advances over it. test/capture-fixture.ts computes the same bytes.
 *   memfill file PATH
 *     data:  PATH read into an anonymous mapping of its size (bench/capture.ts, demo).
 *
 * Built with: gcc -O2 -o memfill memfill.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void fill(volatile unsigned char *p, size_t length, uint32_t seed, uint32_t tag) {
  uint32_t x = seed * 0x9e3779b9u + tag;
  if (x == 0) x = 1;
  for (size_t o = 0; o + 4 <= length; o += 4) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    uint32_t v = (o / PAGE) % 4 == 3 ? 0 : x;
    memcpy((void *)(p + o), &v, 4); /* little-endian hosts: the word's bytes in order */
  }
}

/* Blocks until stdin ends: the parent closes it (or dies) to let this process go. */
static void wait_for_eof(void) {
  char c[64];
  while (read(0, c, sizeof c) > 0) {
  }
}

static int pattern(uint32_t seed) {
  volatile unsigned char stack[64 * 1024];
  mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024); /* keep the 1 MiB block on the brk heap */
  unsigned char *heap = malloc(1024 * 1024);
  if (!heap) die("malloc");
  const size_t mlen = 4 * 1024 * 1024;
  unsigned char *m = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) die("mmap");
  fill(heap, 1024 * 1024, seed, 1);
  fill(m, mlen, seed, 2);
  fill(stack, sizeof stack, seed, 3);
  if (mprotect(m + 256 * PAGE, PAGE, PROT_NONE) != 0) die("mprotect");
  FILE *tf = tmpfile();
  if (!tf) die("tmpfile");
  unsigned char page[PAGE];
  memset(page, 0x5a, sizeof page);
  if (fwrite(page, 1, sizeof page, tf) != sizeof page || fflush(tf) != 0) die("fwrite");
  unsigned char *s = mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, fileno(tf), 0);
  if (s == MAP_FAILED) die("mmap short");
  printf("{\"pid\":%d,\"heap\":\"%p\",\"heapLen\":%d,\"mmap\":\"%p\",\"mmapLen\":%zu,\"guard\":\"%p\",\"stack\":\"%p\",\"stackLen\":%zu,\"short\":\"%p\"}\n",
         (int)getpid(), (void *)heap, 1024 * 1024, (void *)m, mlen, (void *)(m + 256 * PAGE), (void *)stack, sizeof stack, (void *)s);
  fflush(stdout);
  wait_for_eof();
  return stack[0] + heap[0]; /* keeps the stack array alive until here */
}

static int file(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) die("open");
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  const size_t length = (size_t)st.st_size;
  const size_t mapped = (length + PAGE - 1) / PAGE * PAGE;
  unsigned char *p = mmap(NULL, mapped ? mapped : PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  for (size_t done = 0; done < length;) {
    ssize_t n = read(fd, p + done, length - done);
    if (n <= 0) die("read");
    done += (size_t)n;
  }
  close(fd);
  printf("{\"pid\":%d,\"data\":\"%p\",\"dataLen\":%zu}\n", (int)getpid(), (void *)p, length);
  fflush(stdout);
  wait_for_eof();
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "pattern") == 0) return pattern((uint32_t)strtoul(argv[2], NULL, 0));
  if (argc == 3 && strcmp(argv[1], "file") == 0) return file(argv[2]);
  fprintf(stderr, "usage: memfill pattern SEED | memfill file PATH\n");
  return 2;
}

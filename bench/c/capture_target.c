/*
 * A process for the capture tests and bench/capture.ts (issue 13). Prints one JSON line on
 * stdout (its pid, the addresses below, the thread ids), then waits until stdin reaches end of
 * file, so it never outlives the process that started it.
 *
 *   capture_target THREADS RESERVE_MIB [DATA_FILE]
 *     sparse:  a RESERVE_MIB MiB anonymous MAP_NORESERVE mapping of which only pages 1, 100 and
 *              the last are written ("PAGE0001", "PAGE0100", "PAGELAST" at their starts); the
 *              rest is never touched;
 *     hidden:  a 1 MiB anonymous mapping whose page 0 starts with "DATA" and page 5 with
 *              "DATA5", then made PROT_NONE;
 *     wonly:   a 64 KiB anonymous mapping whose page 0 starts with "WONLY", then made PROT_WRITE;
 *     reserve: a 64 MiB PROT_NONE MAP_NORESERVE reservation, never touched;
 *     threads: THREADS threads, each blocked in read() on a pipe that is never written; "tids"
 *              lists their thread ids and "stacks" an address on each one's stack;
 *     data:    DATA_FILE read into an anonymous mapping of its size (bench/capture.ts), or null.
 *
 * Built with: gcc -O2 -pthread -o capture_target capture_target.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096u
#define MAX_THREADS 64

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int blocker[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static int started;
static pid_t tids[MAX_THREADS];
static void *stacks[MAX_THREADS];

static void *blocked(void *arg) {
  volatile char frame[256];
  long i = (long)arg;
  memcpy((void *)frame, "THREAD", 6);
  pthread_mutex_lock(&lock);
  tids[i] = (pid_t)syscall(SYS_gettid);
  stacks[i] = (void *)frame;
  started++;
  pthread_cond_signal(&ready);
  pthread_mutex_unlock(&lock);
  char c;
  while (read(blocker[0], &c, 1) > 0) {
  }
  return frame[0] == 0 ? NULL : (void *)arg;
}

static unsigned char *anon(size_t length, int flags) {
  unsigned char *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: capture_target THREADS RESERVE_MIB [DATA_FILE]\n");
    return 2;
  }
  long threads = strtol(argv[1], NULL, 10);
  size_t reserve = (size_t)strtoul(argv[2], NULL, 10) * 1024 * 1024;
  if (threads < 0 || threads > MAX_THREADS || reserve < 2 * 1024 * 1024) die("arguments");

  unsigned char *sparse = anon(reserve, MAP_NORESERVE);
  memcpy(sparse + 1 * PAGE, "PAGE0001", 8);
  memcpy(sparse + 100 * PAGE, "PAGE0100", 8);
  memcpy(sparse + reserve - PAGE, "PAGELAST", 8);

  unsigned char *hidden = anon(1024 * 1024, 0);
  memcpy(hidden, "DATA", 4);
  memcpy(hidden + 5 * PAGE, "DATA5", 5);
  if (mprotect(hidden, 1024 * 1024, PROT_NONE) != 0) die("mprotect none");
  unsigned char *wonly = anon(64 * 1024, 0);
  memcpy(wonly, "WONLY", 5);
  if (mprotect(wonly, 64 * 1024, PROT_WRITE) != 0) die("mprotect write");
  unsigned char *reservation = mmap(NULL, 64 * 1024 * 1024, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reservation == MAP_FAILED) die("mmap reserve");

  unsigned char *data = NULL;
  size_t dataLen = 0;
  if (argc == 4) {
    int fd = open(argv[3], O_RDONLY);
    if (fd < 0) die("open");
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    dataLen = (size_t)st.st_size;
    data = anon(dataLen ? (dataLen + PAGE - 1) / PAGE * PAGE : PAGE, 0);
    for (size_t done = 0; done < dataLen;) {
      ssize_t n = read(fd, data + done, dataLen - done);
      if (n <= 0) die("read");
      done += (size_t)n;
    }
    close(fd);
  }

  if (pipe(blocker) != 0) die("pipe");
  pthread_t t[MAX_THREADS];
  for (long i = 0; i < threads; i++) {
    if (pthread_create(&t[i], NULL, blocked, (void *)i) != 0) die("pthread_create");
  }
  pthread_mutex_lock(&lock);
  while (started < threads) pthread_cond_wait(&ready, &lock);
  pthread_mutex_unlock(&lock);

  char dataText[32] = "null";
  if (data) snprintf(dataText, sizeof dataText, "\"%p\"", (void *)data);
  printf("{\"pid\":%d,\"sparse\":\"%p\",\"sparseLen\":%zu,\"hidden\":\"%p\",\"wonly\":\"%p\",\"reserve\":\"%p\",\"data\":%s,\"dataLen\":%zu,\"tids\":[",
         (int)getpid(), (void *)sparse, reserve, (void *)hidden, (void *)wonly, (void *)reservation, dataText, dataLen);
  for (long i = 0; i < threads; i++) printf("%s%d", i ? "," : "", (int)tids[i]);
  printf("],\"stacks\":[");
  for (long i = 0; i < threads; i++) printf("%s\"%p\"", i ? "," : "", stacks[i]);
  printf("]}\n");
  fflush(stdout);
  char c[64];
  while (read(0, c, sizeof c) > 0) {
  }
  return 0;
}

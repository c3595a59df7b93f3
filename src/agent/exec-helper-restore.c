/*
 * `exec-helper restore`: makes a guest restored from a snapshot this VM (the agent's Restored call,
 * see restore.ts). Node has no settimeofday, ioctl or setns, so these calls are made here; a static
 * C program costs a just-restored guest, whose emulator has translated none of its code yet, a few
 * milliseconds where a Perl interpreter cost 150-200 ms.
 *
 * The request is one stdin line of tab-separated fields, so the agent can start this process ahead
 * of need and a restore finds it waiting:
 *   HOST_MS SEEN_MS ENTROPY HOSTNAME UTS_NS MAC ADDRESS GATEWAY
 * HOST_MS is the host's time (ms since the epoch), SEEN_MS the guest's clock when the request
 * arrived (the time until this process reads the clock is added); ENTROPY is hex; UTS_NS is the
 * workload's UTS namespace file (it gets the hostname too); MAC, ADDRESS (A.B.C.D/N) and GATEWAY
 * are eth0's. An empty field skips its part (empty MAC: no network change, empty GATEWAY: no
 * default route); the agent always sends the clock, entropy and hostname.
 *
 * Every field is checked, and the namespace file opened, before anything changes. Then, in order: the clock, the entropy (written to
 * /dev/urandom, then RNDRESEEDCRNG so the next random bytes come from a reseeded generator and two
 * guests restored from one snapshot never read the same ones), the hostname, then the network with
 * busybox `ip` (list form, no shell). Exits 0 when done, or 1 with the reason on stderr; the first
 * failure ends it. No line at all (stdin closed, the agent discarding a spare) changes nothing.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "exec-helper.h"

/* The longest request: 4096 bytes of entropy as hex plus short fields. */
#define MAX_REQUEST 16384
#define FIELD_COUNT 8
#define MAX_ENTROPY 4096
#define MAX_HOSTNAME 64

extern char **environ;

enum { HOST_MS, SEEN_MS, ENTROPY, HOSTNAME, UTS_NS, MAC, ADDRESS, GATEWAY };
static const char *const field_names[FIELD_COUNT] = {"host time", "guest time", "entropy", "hostname", "UTS namespace", "MAC", "address", "gateway"};

static int fail(const char *what, const char *subject) {
  if (subject) fprintf(stderr, "%s %s: %s\n", what, subject, strerror(errno));
  else fprintf(stderr, "%s: %s\n", what, strerror(errno));
  return 1;
}

static int bad_request(const char *message, const char *field) {
  fprintf(stderr, "restore request: %s%s%s\n", field ? field : "", field ? ": " : "", message);
  return 1;
}

/* Reads the request line; 0 with *line NULL when stdin closed without one. */
static int read_request(char *buf, size_t size, char **line) {
  size_t len = 0;
  *line = NULL;
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("reading the request", NULL);
    if (n == 0) {
      if (len == 0) return 0;
      return bad_request("it does not end with a newline", NULL);
    }
    len += (size_t)n;
    buf[len] = '\0';
    char *nl = memchr(buf, '\n', len);
    if (nl) {
      *nl = '\0';
      *line = buf;
      return 0;
    }
    if (len == size - 1) return bad_request("longer than the limit", NULL);
  }
}

static int digits_only(const char *s) {
  if (!*s || strlen(s) > 18) return 0;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return 0;
  return 1;
}

/* Plain characters only: the fields name a host, files and addresses, never control characters. */
static int printable(const char *s) {
  for (; *s; s++)
    if (!isgraph((unsigned char)*s)) return 0;
  return 1;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs `ip ARGS...` and waits; 1 with a message naming the command when it fails. */
static int ip(char *const args[]) {
  char *argv[10] = {"ip"};
  int n = 1;
  for (; n < 9 && args[n - 1]; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  pid_t pid;
  int err = posix_spawnp(&pid, "ip", NULL, NULL, argv, environ);
  int status = 0;
  if (err == 0) {
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) {
        err = errno;
        break;
      }
  }
  if (err == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  fprintf(stderr, "ip");
  for (int i = 1; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
  if (err) fprintf(stderr, ": %s\n", strerror(err));
  else if (WIFEXITED(status)) fprintf(stderr, " failed with status %d\n", WEXITSTATUS(status));
  else fprintf(stderr, " was killed by signal %d\n", WTERMSIG(status));
  return 1;
}

int restore_identity(void) {
  static char buf[MAX_REQUEST];
  static unsigned char entropy[MAX_ENTROPY];
  char *line;
  if (read_request(buf, sizeof buf, &line) != 0) return 1;
  if (!line) return 0;

  char *f[FIELD_COUNT];
  int count = 0;
  for (char *p = line;; p++) {
    if (count == FIELD_COUNT) return bad_request("8 tab-separated fields expected", NULL);
    f[count++] = p;
    p = strchr(p, '\t');
    if (!p) break;
    *p = '\0';
  }
  if (count != FIELD_COUNT) return bad_request("8 tab-separated fields expected", NULL);
  for (int i = 0; i < FIELD_COUNT; i++)
    if (!printable(f[i])) return bad_request("not printable", field_names[i]);
  if (*f[HOST_MS] && !digits_only(f[HOST_MS])) return bad_request("not a time in ms", field_names[HOST_MS]);
  if (*f[HOST_MS] && !digits_only(f[SEEN_MS])) return bad_request("not a time in ms", field_names[SEEN_MS]);
  size_t hex_len = strlen(f[ENTROPY]);
  if (hex_len % 2 != 0 || hex_len / 2 > MAX_ENTROPY) return bad_request("not an even number of hex digits within the limit", field_names[ENTROPY]);
  for (size_t i = 0; i < hex_len; i += 2) {
    int hi = hex_value(f[ENTROPY][i]), lo = hex_value(f[ENTROPY][i + 1]);
    if (hi < 0 || lo < 0) return bad_request("not hex", field_names[ENTROPY]);
    entropy[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  if (strlen(f[HOSTNAME]) > MAX_HOSTNAME) return bad_request("too long", field_names[HOSTNAME]);
  if (*f[UTS_NS] && !*f[HOSTNAME]) return bad_request("a namespace without a hostname to set in it", field_names[UTS_NS]);
  if (*f[MAC] && !*f[ADDRESS]) return bad_request("a MAC without an address", field_names[ADDRESS]);
  /* Opened before anything changes: a namespace gone by now fails the request with nothing done. */
  int ns = -1;
  if (*f[UTS_NS] && (ns = open(f[UTS_NS], O_RDONLY | O_CLOEXEC)) < 0) return fail(f[UTS_NS], NULL);

  if (*f[HOST_MS]) {
    long long t = atoll(f[HOST_MS]) + (now_ms() - atoll(f[SEEN_MS]));
    struct timespec ts = {.tv_sec = t / 1000, .tv_nsec = (t % 1000) * 1000000};
    if (clock_settime(CLOCK_REALTIME, &ts) < 0) return fail("setting the clock (clock_settime)", NULL);
  }
  if (hex_len > 0) {
    int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail("/dev/urandom", NULL);
    if (write(fd, entropy, hex_len / 2) != (ssize_t)(hex_len / 2)) return fail("writing /dev/urandom", NULL);
    if (ioctl(fd, RNDRESEEDCRNG) < 0) return fail("RNDRESEEDCRNG", NULL);
    close(fd);
  }
  if (*f[HOSTNAME]) {
    if (sethostname(f[HOSTNAME], strlen(f[HOSTNAME])) < 0) return fail("sethostname", NULL);
    if (ns >= 0) {
      if (setns(ns, CLONE_NEWUTS) < 0) return fail("setns", f[UTS_NS]);
      close(ns);
      if (sethostname(f[HOSTNAME], strlen(f[HOSTNAME])) < 0) return fail("sethostname in the workload", NULL);
    }
  }
  if (*f[MAC]) {
    char *link[] = {"link", "set", "dev", "eth0", "address", f[MAC], NULL};
    char *flush[] = {"addr", "flush", "dev", "eth0", NULL};
    char *add[] = {"addr", "add", f[ADDRESS], "dev", "eth0", NULL};
    if (ip(link) || ip(flush) || ip(add)) return 1;
    if (*f[GATEWAY]) {
      char *route[] = {"route", "replace", "default", "via", f[GATEWAY], "dev", "eth0", NULL};
      if (ip(route)) return 1;
    }
  }
  return 0;
}

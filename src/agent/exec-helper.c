/*
 * The exec helper of Hypercore's guest agent. The agent starts it once per workload with
 * `crun exec`, so it lives inside the workload's container: its namespaces, its cgroup, its
 * capabilities and rlimits. From then on each `exec` into the workload is a fork of this small
 * process instead of a new `crun exec`, which under emulation costs hundreds of milliseconds.
 *
 * Protocol: requests on stdin, events on stdout, both framed as a 4-byte big-endian length then
 * NUL-terminated fields, the first one naming the message.
 *   -> run ID UID GID CWD TTY ARGC ARG... ENVC ENV...
 *                       TTY is empty for pipes, or /dev/pts/N: a terminal the agent allocated
 *                       (the container binds the guest's devpts), which the child makes its
 *                       controlling terminal in a session of its own
 *   -> opened ID        the agent opened its ends of ID's pipes; the helper closes its copies
 *   -> signal ID SIGNO
 *   <- ready VERSION
 *   <- started ID PID STDIN_FD STDOUT_FD STDERR_FD
 *                       PID in the container; the FDs are this process's ends of the child's
 *                       pipes, which the agent opens as /proc/<helper>/fd/<FD> (so they are real
 *                       pipes, as with crun, and /dev/stdout works in the child); -1 each for a
 *                       child on a terminal (the agent holds the terminal's master)
 *   <- failed ID MESSAGE
 *   <- exited ID CODE SIGNO    CODE if it exited, SIGNO (CODE 0) if a signal ended it
 * The helper ends when stdin closes (the agent went away); its children keep running.
 *
 * The helper is not dumpable: the workload, root in the container but without CAP_SYS_PTRACE,
 * can neither trace it nor open its /proc/<pid>/fd (its pipes to the agent and its children's).
 *
 * Run as `exec-helper tty-session COMMAND ARG...` (by a `crun exec` whose stdio is a terminal) it
 * does for one process what a terminal child of the resident helper gets: a session of its own
 * whose controlling terminal is its stdin, then it executes COMMAND. The session has to be made
 * inside the container: a session leader outside its pid namespace (crun, or whatever started
 * crun) is one the shell cannot see, and the shell then has no job control.
 *
 * Run as `exec-helper mount STEP...` (by the agent itself, outside any container) it mounts the
 * workload's root filesystem: see mount_steps below.
 *
 * Run as `exec-helper restore` (by the agent, outside any container) it applies the identity of a
 * guest restored from a snapshot: see exec-helper-restore.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include "exec-helper.h"

#define HELPER_VERSION "2"
/* Largest request: the agent refuses bigger command lines before sending them. */
#define MAX_FRAME (4u * 1024u * 1024u)
#define MAX_FIELDS 65536
#define MAX_ID 64
#define MAX_CHILDREN 1024

struct child {
  char id[MAX_ID + 1];
  pid_t pid;
  /* This process's ends of the child's pipes (stdin write, stdout read, stderr read); -1 once closed. */
  int held[3];
  int exited;
  int used;
};

static struct child children[MAX_CHILDREN];
static unsigned char *inbuf;
static size_t inlen;

static void die(const char *what) {
  fprintf(stderr, "exec-helper: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void write_all(int fd, const void *data, size_t len) {
  const unsigned char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write to the agent");
    }
    p += n;
    len -= (size_t)n;
  }
}

/* Sends one event made of `count` fields. */
static void send_event(int count, const char *const *fields) {
  size_t len = 0;
  for (int i = 0; i < count; i++) len += strlen(fields[i]) + 1;
  unsigned char *frame = malloc(4 + len);
  if (!frame) die("malloc");
  frame[0] = (unsigned char)(len >> 24);
  frame[1] = (unsigned char)(len >> 16);
  frame[2] = (unsigned char)(len >> 8);
  frame[3] = (unsigned char)len;
  size_t at = 4;
  for (int i = 0; i < count; i++) {
    size_t n = strlen(fields[i]) + 1;
    memcpy(frame + at, fields[i], n);
    at += n;
  }
  write_all(STDOUT_FILENO, frame, at);
  free(frame);
}

static struct child *find_child(const char *id) {
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i].used && strcmp(children[i].id, id) == 0) return &children[i];
  return NULL;
}

static void close_held(struct child *c) {
  for (int i = 0; i < 3; i++) {
    if (c->held[i] >= 0) close(c->held[i]);
    c->held[i] = -1;
  }
}

/* A child is forgotten once it exited and the agent has its pipes. */
static void forget_if_done(struct child *c) {
  if (c->exited && c->held[0] < 0 && c->held[1] < 0 && c->held[2] < 0) c->used = 0;
}

static void failed(const char *id, const char *message) {
  const char *f[] = {"failed", id, message};
  send_event(3, f);
}

/* Errors the child writes to its stderr before exiting, in the words Docker uses. */
static const char *reason(int err) {
  switch (err) {
    case ENOENT: return "no such file or directory";
    case ENOTDIR: return "not a directory";
    case EACCES: return "permission denied";
    default: return strerror(err);
  }
}

static void child_fail(int code, const char *format, const char *subject, int err) {
  dprintf(STDERR_FILENO, format, subject, reason(err));
  _exit(code);
}

/* Executes argv, or exits with Docker's status and message for why it could not. */
static void exec_program(char **argv) {
  execvp(argv[0], argv);
  if (errno == ENOENT) {
    dprintf(STDERR_FILENO, "exec: \"%s\": executable file not found in $PATH\n", argv[0]);
    _exit(127);
  }
  child_fail(126, "exec: \"%s\": %s\n", argv[0], errno);
}

/*
 * Makes terminal `fd` the controlling terminal of a new session led by this process, its process
 * group the foreground one: what a shell needs for job control (as runc and crun do for `exec -t`).
 * A process that already leads its session (crun may make one) keeps that session.
 */
static int take_terminal(int fd) {
  if (setsid() < 0 && getsid(0) != getpid()) return -1;
  if (ioctl(fd, TIOCSCTTY, 0) < 0) return -1;
  return tcsetpgrp(fd, getpgrp());
}

/* A terminal path as the agent sends it: /dev/pts/ and a number. */
static int valid_tty(const char *path) {
  const char *prefix = "/dev/pts/";
  if (strncmp(path, prefix, strlen(prefix)) != 0) return 0;
  const char *n = path + strlen(prefix);
  if (*n == '\0' || strlen(n) > 10) return 0;
  for (; *n; n++)
    if (*n < '0' || *n > '9') return 0;
  return 1;
}

/* In the child, between fork and exec: stdio, session, credentials, directory, program. */
static void exec_child(int pipes[3][2], const char *tty, uid_t uid, gid_t gid, const char *cwd, char **argv, char **envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  if (tty) {
    /* Opened here, as root and in the container's mount namespace (its /dev/pts is the guest's). */
    int fd = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !isatty(fd)) child_fail(126, "opening the terminal %s failed: %s\n", tty, fd < 0 ? errno : ENOTTY);
    if (take_terminal(fd) < 0) child_fail(126, "making %s the controlling terminal failed: %s\n", tty, errno);
    if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(126);
  } else {
    setsid();
    if (dup2(pipes[0][0], STDIN_FILENO) < 0 || dup2(pipes[1][1], STDOUT_FILENO) < 0 || dup2(pipes[2][1], STDERR_FILENO) < 0) _exit(126);
  }
  syscall(SYS_close_range, 3u, ~0u, 0u);
  /* The pipes or the terminal are root's: give them to the user, so that it may open /dev/stdout
     (as runc does with pipes and with the console). */
  if (uid != 0)
    for (int fd = 0; fd < (tty ? 1 : 3); fd++) (void)fchown(fd, uid, gid);
  if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) child_fail(126, "setting the user failed (%s): %s\n", "uid:gid", errno);
  if (chdir(cwd) < 0) child_fail(126, "chdir to cwd (\"%s\") failed: %s\n", cwd, errno);
  environ = envp;
  exec_program(argv);
}

static int parse_id(const char *text, unsigned long max, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno || *text == '\0' || *end != '\0' || v > max) return -1;
  *out = v;
  return 0;
}

static void handle_run(char **f, int n) {
  const char *id = f[1];
  unsigned long uid, gid, argc, envc;
  if (n < 8 || parse_id(f[2], 0xfffffffeul, &uid) || parse_id(f[3], 0xfffffffeul, &gid) || (f[5][0] != '\0' && !valid_tty(f[5])) ||
      parse_id(f[6], MAX_FIELDS, &argc) || argc == 0 || (unsigned long)n < 8 + argc || parse_id(f[7 + argc], MAX_FIELDS, &envc) ||
      (unsigned long)n != 8 + argc + envc) {
    failed(id, "malformed run request");
    return;
  }
  const char *tty = f[5][0] != '\0' ? f[5] : NULL;
  if (find_child(id)) {
    failed(id, "a process with this id exists");
    return;
  }
  struct child *slot = NULL;
  for (int i = 0; i < MAX_CHILDREN && !slot; i++)
    if (!children[i].used) slot = &children[i];
  if (!slot) {
    failed(id, "too many processes at once");
    return;
  }
  char **argv = calloc(argc + 1, sizeof(char *));
  char **envp = calloc(envc + 1, sizeof(char *));
  if (!argv || !envp) die("calloc");
  for (unsigned long i = 0; i < argc; i++) argv[i] = f[7 + i];
  for (unsigned long i = 0; i < envc; i++) envp[i] = f[8 + argc + i];

  int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  for (int i = 0; i < 3 && !tty; i++) {
    if (pipe2(pipes[i], O_CLOEXEC) < 0) {
      char message[128];
      snprintf(message, sizeof message, "pipe: %s", strerror(errno));
      for (int j = 0; j < i; j++) close(pipes[j][0]), close(pipes[j][1]);
      failed(id, message);
      free(argv);
      free(envp);
      return;
    }
  }
  pid_t pid = fork();
  if (pid == 0) exec_child(pipes, tty, (uid_t)uid, (gid_t)gid, f[4], argv, envp);
  int err = errno;
  free(argv);
  free(envp);
  /* The child's ends are the child's now (closing -1, for a terminal child, does nothing). */
  close(pipes[0][0]);
  close(pipes[1][1]);
  close(pipes[2][1]);
  if (pid < 0) {
    close(pipes[0][1]), close(pipes[1][0]), close(pipes[2][0]);
    char message[128];
    snprintf(message, sizeof message, "fork: %s", strerror(err));
    failed(id, message);
    return;
  }
  slot->used = 1;
  slot->exited = 0;
  slot->pid = pid;
  snprintf(slot->id, sizeof slot->id, "%s", id);
  slot->held[0] = pipes[0][1];
  slot->held[1] = pipes[1][0];
  slot->held[2] = pipes[2][0];
  char spid[16], s0[16], s1[16], s2[16];
  snprintf(spid, sizeof spid, "%d", (int)pid);
  snprintf(s0, sizeof s0, "%d", slot->held[0]);
  snprintf(s1, sizeof s1, "%d", slot->held[1]);
  snprintf(s2, sizeof s2, "%d", slot->held[2]);
  const char *ev[] = {"started", slot->id, spid, s0, s1, s2};
  send_event(6, ev);
}

static char *fields[MAX_FIELDS];

static void handle_frame(unsigned char *payload, size_t len) {
  int n = 0;
  size_t start = 0;
  /* Every field ends with a NUL; a frame that does not is malformed. */
  if (len == 0 || payload[len - 1] != '\0') {
    fprintf(stderr, "exec-helper: malformed frame\n");
    return;
  }
  for (size_t i = 0; i < len; i++) {
    if (payload[i] != '\0') continue;
    if (n == MAX_FIELDS) {
      fprintf(stderr, "exec-helper: too many fields\n");
      return;
    }
    fields[n++] = (char *)payload + start;
    start = i + 1;
  }
  if (n < 2 || strlen(fields[1]) > MAX_ID) {
    fprintf(stderr, "exec-helper: malformed request\n");
    return;
  }
  if (strcmp(fields[0], "run") == 0) {
    handle_run(fields, n);
  } else if (strcmp(fields[0], "opened") == 0) {
    struct child *c = find_child(fields[1]);
    if (c) {
      close_held(c);
      forget_if_done(c);
    }
  } else if (strcmp(fields[0], "signal") == 0) {
    struct child *c = find_child(fields[1]);
    unsigned long signo;
    if (c && !c->exited && n == 3 && parse_id(fields[2], 64, &signo) == 0) kill(c->pid, (int)signo);
  } else {
    fprintf(stderr, "exec-helper: unknown request %.32s\n", fields[0]);
  }
}

/* Handles every complete frame in the input buffer; the rest waits for more bytes. */
static void drain_input(void) {
  size_t at = 0;
  while (inlen - at >= 4) {
    uint32_t len = ((uint32_t)inbuf[at] << 24) | ((uint32_t)inbuf[at + 1] << 16) | ((uint32_t)inbuf[at + 2] << 8) | inbuf[at + 3];
    if (len > MAX_FRAME) {
      fprintf(stderr, "exec-helper: a frame of %u bytes is over the limit\n", len);
      exit(1);
    }
    if (inlen - at - 4 < len) break;
    handle_frame(inbuf + at + 4, len);
    at += 4 + len;
  }
  memmove(inbuf, inbuf + at, inlen - at);
  inlen -= at;
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (int i = 0; i < MAX_CHILDREN; i++) {
      struct child *c = &children[i];
      if (!c->used || c->exited || c->pid != pid) continue;
      c->exited = 1;
      char code[16], signo[16];
      snprintf(code, sizeof code, "%d", WIFEXITED(status) ? WEXITSTATUS(status) : 0);
      snprintf(signo, sizeof signo, "%d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
      const char *ev[] = {"exited", c->id, code, signo};
      send_event(4, ev);
      forget_if_done(c);
      break;
    }
  }
}

/*
 * `exec-helper mount STEP...`: the agent's mounts of the workload's root filesystem in one process
 * instead of one mount(8) each: under emulation every process start costs tens of milliseconds,
 * and mount(8) first loads its libraries. A STEP is `mkdir PATH` (missing parents too; an existing
 * directory is fine) or `mount FSTYPE SOURCE TARGET OPTIONS`, OPTIONS a comma-separated list as
 * mount(8) takes it: `ro` and `rw` are flags, the rest goes to the filesystem, `-` is none. The
 * steps run in order until one fails. Prints `ok`, or `failed INDEX REASON` (INDEX counts the steps
 * from 0) so the agent knows which mount to replace; exits 0 either way, 2 for a bad command line.
 */
static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p != '/' && *p != '\0') continue;
    char was = *p;
    *p = '\0';
    if (mkdir(buf, 0777) < 0 && errno != EEXIST) return -1;
    *p = was;
    if (was == '\0') break;
  }
  struct stat st;
  if (stat(path, &st) < 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* Splits mount(8)-style OPTIONS into flags and the filesystem's data; -1 when the data is too long. */
static int mount_options(const char *options, unsigned long *flags, char *data, size_t size) {
  *flags = 0;
  data[0] = '\0';
  if (strcmp(options, "-") == 0) return 0;
  size_t used = 0;
  const char *p = options;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 2 && strncmp(p, "ro", 2) == 0) *flags |= MS_RDONLY;
    else if (n == 2 && strncmp(p, "rw", 2) == 0) *flags &= ~(unsigned long)MS_RDONLY;
    else if (n > 0) {
      if (used + n + 2 > size) return -1;
      if (used > 0) data[used++] = ',';
      memcpy(data + used, p, n);
      used += n;
      data[used] = '\0';
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

static int mount_steps(char **argv) {
  /* A mount's data is one page at most. */
  static char data[4096];
  int index = 0;
  char **a = argv;
  while (*a) {
    if (strcmp(a[0], "mkdir") == 0 && a[1]) {
      if (make_dirs(a[1]) < 0) {
        printf("failed %d mkdir %s: %s\n", index, a[1], strerror(errno));
        return 0;
      }
      a += 2;
    } else if (strcmp(a[0], "mount") == 0 && a[1] && a[2] && a[3] && a[4]) {
      unsigned long flags;
      if (mount_options(a[4], &flags, data, sizeof data) < 0) {
        printf("failed %d mount %s on %s: the options are too long\n", index, a[1], a[3]);
        return 0;
      }
      if (mount(a[2], a[3], a[1], flags, data[0] ? data : NULL) < 0) {
        printf("failed %d mount %s %s on %s: %s\n", index, a[1], a[2], a[3], strerror(errno));
        return 0;
      }
      a += 5;
    } else {
      fprintf(stderr, "exec-helper: mount: step %d: expected `mkdir PATH` or `mount FSTYPE SOURCE TARGET OPTIONS`, got `%s`\n", index, a[0]);
      return 2;
    }
    index++;
  }
  printf("ok\n");
  return 0;
}

/* `exec-helper tty-session COMMAND ARG...`: see the top of this file. */
static int tty_session(char **argv) {
  if (argv[0] == NULL) {
    fprintf(stderr, "exec-helper: tty-session needs a command\n");
    return 126;
  }
  if (!isatty(STDIN_FILENO)) child_fail(126, "%s: %s\n", "the standard input is not a terminal", ENOTTY);
  if (take_terminal(STDIN_FILENO) < 0) child_fail(126, "%s: %s\n", "making the standard input the controlling terminal failed", errno);
  /* This binary came as descriptor 3 (crun's --preserve-fds): the command gets stdio only. */
  syscall(SYS_close_range, 3u, ~0u, 0u);
  exec_program(argv);
  return 126;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "tty-session") == 0) return tty_session(argv + 2);
  if (argc > 1 && strcmp(argv[1], "mount") == 0) return mount_steps(argv + 2);
  if (argc == 2 && strcmp(argv[1], "restore") == 0) return restore_identity();
  prctl(PR_SET_DUMPABLE, 0);
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0) die("sigprocmask");
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");
  /* Nothing of the agent's side is inherited by the children: only stdio is theirs. */
  fcntl(STDIN_FILENO, F_SETFD, FD_CLOEXEC);
  fcntl(STDOUT_FILENO, F_SETFD, FD_CLOEXEC);
  inbuf = malloc(MAX_FRAME + 4);
  if (!inbuf) die("malloc");
  const char *ready[] = {"ready", HELPER_VERSION};
  send_event(2, ready);

  struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (read(sfd, &info, sizeof info) == sizeof info) {
      }
      reap();
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(STDIN_FILENO, inbuf + inlen, MAX_FRAME + 4 - inlen);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      inlen += (size_t)n;
      drain_input();
    }
  }
  /* The agent is gone: its pipes go with it, the children stay. */
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i].used) close_held(&children[i]);
  return 0;
}

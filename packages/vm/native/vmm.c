/*
 * berth-vmm: the host process of a berth VM container, QEMU's parent.
 *
 *   berth-vmm [--hold FD] RUN_DIR QEMU [QEMU_ARGS...]
 *
 * With --hold, berth-vmm first reads one byte from FD and starts QEMU only
 * once it is "g" (end of file or anything else: it exits 1, having started
 * nothing): the host puts berth-vmm in the container's cgroup meanwhile, so
 * QEMU and every thread it makes are created there.
 *
 * Its pid is the container's pid on the host (berth state, --pid-file), so the
 * tools that wait for a container's process (conmon, containerd's shim) wait
 * for this one, and its exit status is the container's: the guest agent's last
 * "exit CODE" (runc's rule: 128+N for signal N), once QEMU is gone. QEMU dies
 * with it (PR_SET_PDEATHSIG), and a signal that would end it is passed to QEMU
 * first, so no VM outlives its container's process.
 *
 * Nothing the guest sends is stored without bound on the host. berth-vmm holds
 * the host end of three channels QEMU writes guest-controlled bytes to:
 *   - the berth.status port (a socket, QEMU's fd VMM_STATUS_FD): parsed here,
 *     line by line (at most STATUS_LINE_MAX bytes a line), and only the state
 *     it describes is kept, in RUN_DIR/status (a few lines, replaced by rename):
 *       created PID | started | error STEP ERRNO SYSCALL | fail ERRNO WHAT |
 *       execs COUNT LAST_CODE | exit CODE | faults COUNT
 *     A line that is too long, malformed or unknown is counted as a fault and
 *     otherwise ignored;
 *   - the guest's serial console (a socket, QEMU's fd VMM_CONSOLE_FD): written
 *     to RUN_DIR/console.log, which is moved to console.log.1 once it holds
 *     CONSOLE_MAX bytes (at most twice that on the host);
 *   - QEMU's stderr (a pipe): appended to berth-vmm's own stderr (qemu.log)
 *     up to QEMU_LOG_MAX bytes, the rest dropped.
 * A guest that reports "exit" has EXIT_GRACE_MS to power off before QEMU is
 * killed: the report means its container's process is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VMM_STATUS_FD 4  /* machine.ts VMM_STATUS_FD */
#define VMM_CONSOLE_FD 5 /* machine.ts VMM_CONSOLE_FD */
#define STATUS_LINE_MAX 256
#define CONSOLE_MAX (256 * 1024)
#define QEMU_LOG_MAX (256 * 1024)
#define FLUSH_MIN_MS 5
#define EXIT_GRACE_MS 10000

static volatile pid_t qemu = 0;
static volatile sig_atomic_t received = 0;

static void forward(int sig) {
  received = sig;
  if (qemu > 0) kill(qemu, sig == SIGINT || sig == SIGHUP || sig == SIGQUIT ? SIGTERM : sig);
}

static void on_chld(int sig) { (void)sig; }

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the status port: parsed, only the state kept ---- */

static struct {
  long created; /* 0: not reported */
  int started;
  int has_error;
  long err_step, err_errno;
  char err_syscall[65];
  int has_fail;
  long fail_errno;
  char fail_what[STATUS_LINE_MAX];
  unsigned long execs;
  long exec_last;
  long exit_code; /* -1: not reported */
  unsigned long faults;
} st = {.exit_code = -1, .exec_last = -1};

static char line[STATUS_LINE_MAX];
static size_t line_len = 0;
static int line_long = 0;
static int dirty = 1;

/* A decimal number of at most 10 digits in [0, max], the whole word. */
static int number(const char *s, long max, long *out) {
  if (!s || !*s || strlen(s) > 10) return -1;
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  if (v > max) return -1;
  *out = v;
  return 0;
}

static int word_ok(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
          *p == '.' || *p == '/' || *p == '-'))
      return 0;
  return 1;
}

static int text_ok(const char *s) {
  if (!*s) return 0;
  for (const char *p = s; *p; p++)
    if (*p < 0x20 || *p > 0x7e) return 0;
  return 1;
}

/* One complete line (no newline, NUL-terminated): 0 when understood. */
static int status_line(char *l) {
  char *rest = strchr(l, ' ');
  if (rest) *rest++ = 0;
  long a, b;
  if (!strcmp(l, "created")) {
    if (number(rest, INT_MAX, &a) < 0 || a == 0) return -1;
    st.created = a;
  } else if (!strcmp(l, "started")) {
    if (rest) return -1;
    st.started = 1;
  } else if (!strcmp(l, "exit")) {
    if (number(rest, 255, &a) < 0) return -1;
    st.exit_code = a;
  } else if (!strcmp(l, "exec-exit")) {
    if (number(rest, 255, &a) < 0) return -1;
    st.execs++;
    st.exec_last = a;
  } else if (!strcmp(l, "error")) {
    char *e = rest ? strchr(rest, ' ') : NULL;
    char *sc = e ? strchr(e + 1, ' ') : NULL;
    if (!sc) return -1;
    *e++ = 0;
    *sc++ = 0;
    if (number(rest, 1000000, &a) < 0 || number(e, 4095, &b) < 0 || !word_ok(sc, 64)) return -1;
    st.has_error = 1;
    st.err_step = a;
    st.err_errno = b;
    snprintf(st.err_syscall, sizeof st.err_syscall, "%s", sc);
  } else if (!strcmp(l, "fail")) {
    char *what = rest ? strchr(rest, ' ') : NULL;
    if (!what) return -1;
    *what++ = 0;
    if (number(rest, 4095, &a) < 0 || !text_ok(what)) return -1;
    st.has_fail = 1;
    st.fail_errno = a;
    snprintf(st.fail_what, sizeof st.fail_what, "%s", what);
  } else {
    return -1;
  }
  return 0;
}

static void status_bytes(const char *buf, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = buf[i];
    if (c == '\n') {
      line[line_len] = 0;
      if (line_long || memchr(line, 0, line_len) || status_line(line) < 0) st.faults++;
      line_len = 0;
      line_long = 0;
      dirty = 1;
    } else if (line_len < sizeof line - 1) {
      line[line_len++] = c;
    } else {
      line_long = 1;
    }
  }
}

static int run_dir = -1;

static void write_state(void) {
  char out[1024];
  int n = 0;
  if (st.created) n += snprintf(out + n, sizeof out - n, "created %ld\n", st.created);
  if (st.started) n += snprintf(out + n, sizeof out - n, "started\n");
  if (st.has_error)
    n += snprintf(out + n, sizeof out - n, "error %ld %ld %s\n", st.err_step, st.err_errno, st.err_syscall);
  if (st.has_fail) n += snprintf(out + n, sizeof out - n, "fail %ld %s\n", st.fail_errno, st.fail_what);
  if (st.execs) n += snprintf(out + n, sizeof out - n, "execs %lu %ld\n", st.execs, st.exec_last);
  if (st.exit_code >= 0) n += snprintf(out + n, sizeof out - n, "exit %ld\n", st.exit_code);
  if (st.faults) n += snprintf(out + n, sizeof out - n, "faults %lu\n", st.faults);
  if (n < 0 || (size_t)n >= sizeof out) n = (int)sizeof out - 1;
  int fd = openat(run_dir, "status.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  ssize_t w = write(fd, out, (size_t)n);
  close(fd);
  if (w == n) renameat(run_dir, "status.tmp", run_dir, "status");
  dirty = 0;
}

/* ---- the console: a file of at most CONSOLE_MAX bytes and one older one ---- */

static int console_out = -1;
static size_t console_len = 0;

static int open_console(void) {
  return openat(run_dir, "console.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
}

static void console_bytes(const char *buf, size_t n) {
  while (n && console_out >= 0) {
    if (console_len == CONSOLE_MAX) {
      close(console_out);
      renameat(run_dir, "console.log", run_dir, "console.log.1");
      console_out = open_console();
      console_len = 0;
      continue;
    }
    size_t k = n < CONSOLE_MAX - console_len ? n : CONSOLE_MAX - console_len;
    ssize_t w = write(console_out, buf, k);
    if (w <= 0) return; /* a full disk: dropped */
    console_len += (size_t)w;
    buf += w;
    n -= (size_t)w;
  }
}

/* ---- QEMU's stderr: the first QEMU_LOG_MAX bytes ---- */

static size_t qemu_log_len = 0;

static void qemu_log_bytes(const char *buf, size_t n) {
  if (qemu_log_len >= QEMU_LOG_MAX) return;
  size_t k = n < QEMU_LOG_MAX - qemu_log_len ? n : QEMU_LOG_MAX - qemu_log_len;
  ssize_t w = write(2, buf, k);
  if (w > 0) qemu_log_len += (size_t)w;
  if (qemu_log_len >= QEMU_LOG_MAX) {
    static const char note[] = "\nberth-vmm: QEMU's output past this point was dropped\n";
    if (write(2, note, sizeof note - 1) < 0) { /* nothing to do */ }
  }
}

/* One read from a channel: 0 while it stays open, -1 at its end. */
static int pump(int fd, void (*sink)(const char *, size_t)) {
  static char buf[65536];
  ssize_t r = read(fd, buf, sizeof buf);
  if (r > 0) {
    sink(buf, (size_t)r);
    return 0;
  }
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
  return -1;
}

static int high_fd(int fd) {
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return h;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "--hold")) {
    long hold;
    if (number(argv[2], INT_MAX, &hold) < 0) return 2;
    char go = 0;
    ssize_t r;
    do r = read((int)hold, &go, 1);
    while (r < 0 && errno == EINTR);
    close((int)hold);
    if (r != 1 || go != 'g') {
      fprintf(stderr, "berth-vmm: not released (the host did not place it)\n");
      return 1;
    }
    argc -= 2;
    argv += 2;
  }
  if (argc < 3) {
    fprintf(stderr, "usage: berth-vmm [--hold FD] RUN_DIR QEMU [ARGS...] (run by @berth/vm)\n");
    return 2;
  }
  run_dir = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (run_dir < 0) {
    perror("berth-vmm: run directory");
    return 1;
  }
  console_out = open_console();
  int status_sv[2], console_sv[2], err_pipe[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, status_sv) < 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console_sv) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
    perror("berth-vmm: socketpair");
    return 1;
  }
  /* above every fd QEMU gets (0-3 from berth, 4 and 5 here), so the dup2s below cannot clash */
  int fds[] = {status_sv[0], status_sv[1], console_sv[0], console_sv[1], err_pipe[0], err_pipe[1]};
  for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
    if ((fds[i] = high_fd(fds[i])) < 0) {
      perror("berth-vmm: fcntl");
      return 1;
    }

  sigset_t chld, waitmask;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &waitmask);
  sigdelset(&waitmask, SIGCHLD);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_chld;
  sigaction(SIGCHLD, &sa, NULL);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    perror("berth-vmm: fork");
    return 1;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &waitmask, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) _exit(1);
    if (dup2(fds[1], VMM_STATUS_FD) < 0 || dup2(fds[3], VMM_CONSOLE_FD) < 0 || dup2(fds[5], 2) < 0) _exit(1);
    execv(argv[2], argv + 2);
    fprintf(stderr, "berth-vmm: exec %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  qemu = pid;
  close(fds[1]);
  close(fds[3]);
  close(fds[5]);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);

  struct pollfd pf[3] = {{fds[0], POLLIN, 0}, {fds[2], POLLIN, 0}, {fds[4], POLLIN, 0}};
  void (*sinks[3])(const char *, size_t) = {status_bytes, console_bytes, qemu_log_bytes};
  write_state();
  long long last_flush = now_ms(), exit_deadline = -1;
  int wst = 0;
  for (;;) {
    pid_t r = waitpid(pid, &wst, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return 255;
    long long now = now_ms();
    if (st.exit_code >= 0 && exit_deadline < 0) exit_deadline = now + EXIT_GRACE_MS;
    if (exit_deadline >= 0 && now >= exit_deadline) {
      kill(pid, SIGKILL); /* the guest said its process exited, but did not power off */
      exit_deadline = LLONG_MAX;
    }
    if (dirty && now - last_flush >= FLUSH_MIN_MS) {
      write_state();
      last_flush = now;
    }
    long long wait = -1;
    if (dirty) wait = last_flush + FLUSH_MIN_MS - now;
    if (exit_deadline >= 0 && exit_deadline != LLONG_MAX) {
      long long left = exit_deadline - now;
      if (wait < 0 || left < wait) wait = left;
    }
    struct timespec ts, *tp = NULL;
    if (wait >= 0) {
      ts.tv_sec = wait / 1000;
      ts.tv_nsec = (wait % 1000) * 1000000;
      tp = &ts;
    }
    int n = ppoll(pf, 3, tp, &waitmask);
    if (n <= 0) continue;
    for (int i = 0; i < 3; i++) {
      if (pf[i].fd < 0 || !pf[i].revents) continue;
      if (pump(pf[i].fd, sinks[i]) < 0) {
        close(pf[i].fd);
        pf[i].fd = -1;
      }
    }
  }
  /* what QEMU wrote before it ended: its ends are closed, so each read ends */
  for (int i = 0; i < 3; i++) {
    if (pf[i].fd < 0) continue;
    fcntl(pf[i].fd, F_SETFL, O_NONBLOCK);
    while (pump(pf[i].fd, sinks[i]) == 0) {
      struct pollfd one = {pf[i].fd, POLLIN, 0};
      if (poll(&one, 1, 0) <= 0) break;
    }
  }
  write_state();
  if (st.exit_code >= 0) return (int)st.exit_code;
  /* QEMU ended before the guest reported: a signal's status, else a failure */
  if (WIFSIGNALED(wst)) return 128 + WTERMSIG(wst);
  if (received) return 128 + received;
  return WIFEXITED(wst) && WEXITSTATUS(wst) ? WEXITSTATUS(wst) : 255;
}

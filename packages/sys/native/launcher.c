/*
 * berth-launcher: the mechanism between clone() and execve().
 *
 * It reads one plan (see packages/sys/README.md, "Plan format") from the fd
 * named by BERTH_PLAN_FD, executes its steps in order and talks to its parent
 * over the socket named by BERTH_SYNC_FD with fixed-size messages. It makes no
 * decisions of its own: every path, flag and value comes from the plan, so the
 * TypeScript side can explain any failure in the user's terms from the step
 * index, the syscall name and errno that we report.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#define PLAN_MAGIC "BRTH"
#define PLAN_VERSION 1
#define FLAG_IGNORE_ENOENT 1u /* a missing path (ENOENT) skips the step */
#define FLAG_IN_ROOT 2u       /* the step's paths are inside the container's root (paths.h) */
#define FLAG_TMPCOPYUP 4u     /* a new mount gets a copy of what the directory held */
#define FLAG_NOTE_MADE 8u     /* a mkdir notes the directory it made (made_dir) */
#define FLAG_SOURCE_IN_ROOT 16u /* a bind mount's source is a path in the container's root */

enum op {
  OP_SETNS = 1, OP_CLONE = 2, OP_SYNC = 3, OP_MOUNT = 4, OP_MKDIR = 5, OP_MKNOD = 6,
  OP_SYMLINK = 7, OP_PIVOT_ROOT = 8, OP_CHROOT = 9, OP_MASK = 10, OP_SETHOSTNAME = 11,
  OP_SETDOMAINNAME = 12, OP_SETRLIMIT = 13, OP_NO_NEW_PRIVS = 14, OP_CREDS = 15,
  OP_CHDIR = 16, OP_UMASK = 17, OP_FIFO_OPEN = 18, OP_FIFO_WAIT = 19, OP_EXEC = 20,
  /* 21: was OP_WRITE (any path); procfs writes are OP_PROC_WRITE */ OP_SETSID = 22, OP_READY = 23, OP_MKFILE = 24, OP_LOOKUP = 25,
  OP_UMOUNT = 26, OP_READONLY = 27, OP_CLOSE_FDS = 28, OP_PTY = 29, OP_UNSHARE = 30,
  OP_ROOT = 31, OP_PROC_WRITE = 32, /* 33: unused */ OP_PIDFD_SETNS = 34, OP_PIDFD_KILL = 35, OP_TEST_WALK = 39,
  OP_SECCOMP = 40, OP_SCHED = 42, OP_IOPRIO = 43, OP_LSM = 44,
};

enum msg_kind { MSG_PID = 1, MSG_SYNC = 2, MSG_ERROR = 3, MSG_READY = 4 };

struct msg {
  uint32_t kind;
  int32_t step;
  int32_t err;
  int32_t value;
  char what[48];
};

struct arg {
  char kind; /* 'i' or 's' */
  int64_t i;
  char *s;
  uint32_t len;
};

struct step {
  uint16_t op;
  uint16_t flags;
  uint32_t nargs;
  struct arg *args;
};

static int sync_fd = -1;
static int fifo_fd = -1;
static int console_fd = -1;     /* pty master, in the foreground launcher */
static int pty_sock[2] = {-1, -1};
static char resolved[4096];
static volatile pid_t child_pid = 0;

static void send_msg(uint32_t kind, int step, int err, int value, const char *what) {
  struct msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.step = step;
  m.err = err;
  m.value = value;
  if (what) strncpy(m.what, what, sizeof m.what - 1);
  if (sync_fd >= 0) {
    ssize_t n;
    do n = write(sync_fd, &m, sizeof m); while (n < 0 && errno == EINTR);
  }
}

static void die(int step, const char *what, int err) {
  send_msg(MSG_ERROR, step, err, 0, what);
  if (sync_fd < 0) fprintf(stderr, "berth-launcher: step %d: %s: %s\n", step, what, strerror(err));
  _exit(1);
}

#include "paths.h"
#include "mounts.h"

/* ---- plan reading ---- */

/* The plan is read in 64 KiB chunks, not with one read(2) per field (hundreds of syscalls per start). */
static char plan_buf[65536];
static size_t plan_have, plan_at;

static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    if (plan_at == plan_have) {
      ssize_t n = read(fd, plan_buf, sizeof plan_buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return -1;
      plan_have = (size_t)n;
      plan_at = 0;
    }
    size_t k = plan_have - plan_at < len ? plan_have - plan_at : len;
    memcpy(p, plan_buf + plan_at, k);
    plan_at += k;
    p += k;
    len -= k;
  }
  return 0;
}

static struct step *read_plan(int fd, uint32_t *count) {
  char magic[4];
  uint32_t version, n;
  if (read_full(fd, magic, 4) || memcmp(magic, PLAN_MAGIC, 4)) die(-1, "read plan: bad magic", EINVAL);
  if (read_full(fd, &version, 4) || version != PLAN_VERSION) die(-1, "read plan: unsupported version", EINVAL);
  if (read_full(fd, &n, 4) || n > 100000) die(-1, "read plan: bad step count", EINVAL);
  struct step *steps = calloc(n ? n : 1, sizeof *steps);
  if (!steps) die(-1, "read plan", ENOMEM);
  for (uint32_t i = 0; i < n; i++) {
    struct step *s = &steps[i];
    if (read_full(fd, &s->op, 2) || read_full(fd, &s->flags, 2) || read_full(fd, &s->nargs, 4) ||
        s->nargs > 1000000)
      die((int)i, "read plan: truncated step", EINVAL);
    s->args = calloc(s->nargs ? s->nargs : 1, sizeof *s->args);
    if (!s->args) die((int)i, "read plan", ENOMEM);
    for (uint32_t a = 0; a < s->nargs; a++) {
      struct arg *g = &s->args[a];
      if (read_full(fd, &g->kind, 1)) die((int)i, "read plan: truncated argument", EINVAL);
      if (g->kind == 'i') {
        if (read_full(fd, &g->i, 8)) die((int)i, "read plan: truncated integer", EINVAL);
      } else if (g->kind == 's') {
        if (read_full(fd, &g->len, 4) || g->len > (64u << 20)) die((int)i, "read plan: bad string", EINVAL);
        g->s = malloc(g->len + 1);
        if (!g->s) die((int)i, "read plan", ENOMEM);
        if (g->len && read_full(fd, g->s, g->len)) die((int)i, "read plan: truncated string", EINVAL);
        g->s[g->len] = 0;
      } else {
        die((int)i, "read plan: bad argument kind", EINVAL);
      }
    }
  }
  *count = n;
  return steps;
}

static const char *S(struct step *s, uint32_t a) {
  if (a >= s->nargs || s->args[a].kind != 's') return NULL;
  return s->args[a].len ? s->args[a].s : NULL;
}
static const char *Sx(struct step *s, uint32_t a) { /* never NULL */
  const char *v = S(s, a);
  return v ? v : "";
}
static int64_t I(struct step *s, uint32_t a) {
  if (a >= s->nargs || s->args[a].kind != 'i') return 0;
  return s->args[a].i;
}

/* ---- helpers ---- */

static int mkdir_p(const char *path, mode_t mode) {
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) return errno = EINVAL, -1;
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(buf, &st) < 0) return -1;
  if (!S_ISDIR(st.st_mode)) return errno = ENOTDIR, -1;
  return 0;
}

static int send_fd(int sock, int fd) {
  char dummy = 'p';
  struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  memset(&u, 0, sizeof u);
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &mh, 0) < 0 ? -1 : 0;
}

static int recv_fd(int sock) {
  char dummy;
  struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static int set_caps(uint64_t eff, uint64_t perm, uint64_t inh) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  d[0].effective = (uint32_t)eff;
  d[1].effective = (uint32_t)(eff >> 32);
  d[0].permitted = (uint32_t)perm;
  d[1].permitted = (uint32_t)(perm >> 32);
  d[0].inheritable = (uint32_t)inh;
  d[1].inheritable = (uint32_t)(inh >> 32);
  return (int)syscall(SYS_capset, &h, d);
}


/* ---- the foreground launcher: wait, forward signals, relay the terminal ---- */

static void forward_signal(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

static struct termios saved_tio;
static int tio_saved = 0;

static void restore_tty(void) {
  if (tio_saved) tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
}

static void resize_pty(void) {
  struct winsize ws;
  if (console_fd >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(console_fd, TIOCSWINSZ, &ws);
}

static void relay_pty(void) {
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
    struct termios raw = saved_tio;
    cfmakeraw(&raw);
    /* keys pass through as typed; output processing stays on, as runc's console keeps it: the
     * container's pty has ONLCR off (step_pty), so \n becomes \r\n here, once */
    raw.c_oflag |= OPOST;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) tio_saved = 1;
    atexit(restore_tty);
  }
  resize_pty();
  char buf[16384];
  int in_open = 1;
  for (;;) {
    struct pollfd p[2] = {{.fd = console_fd, .events = POLLIN}, {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN}};
    int r = poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(console_fd, buf, sizeof buf);
      if (n <= 0) break; /* EIO once every slave fd is closed: the container is gone */
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += w;
      }
    }
    if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) {
        in_open = 0;
        char eot = 4; /* end of input on the host: send ^D as a terminal would */
        if (write(console_fd, &eot, 1) < 0) { /* nothing to do */ }
        continue;
      }
      /* every byte goes on: a signal (SIGWINCH) or a full pty buffer may cut a write short */
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(console_fd, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          in_open = 0;
          break;
        }
        off += w;
      }
    }
  }
}

static void sigwinch(int sig) {
  (void)sig;
  resize_pty();
}

static int wait_child(pid_t pid) {
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, 0);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return 255;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

/*
 * The foreground process's stdin, stdout and stderr without a terminal: pipes this launcher
 * copies to and from its own 0-2 (the caller's), as runc does, never the caller's fds
 * themselves. A process the container leaves behind would otherwise keep the operator's
 * terminal (reading what is typed after `exec` returned, or pushing input with TIOCSTI) or a
 * host file the output was redirected to (reopened through /proc/self/fd to read or truncate).
 * Once the process has exited, what it wrote is drained, and the pipes go with this launcher.
 */
static int relay_in = -1, relay_out = -1, relay_err = -1; /* our ends: write, read, read */

/* One read from `from`, all of it written to `to`: 1 when bytes came, -1 when none were ready
 * (EAGAIN), 0 at end of file (or an error). */
static int copy_out(int from, int to, char *buf, size_t cap) {
  ssize_t n;
  do n = read(from, buf, cap); while (n < 0 && errno == EINTR);
  if (n <= 0) return n < 0 && errno == EAGAIN ? -1 : 0;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break; /* the caller's end is gone: what is left is dropped */
    off += w;
  }
  return 1;
}

static void relay_pipes(pid_t pid) {
  int pidfd = (int)syscall(434 /* SYS_pidfd_open */, pid, 0);
  char buf[16384], in[16384];
  size_t in_len = 0, in_off = 0;
  int in_open = 1, out_open = 1, err_open = 1;
  fcntl(relay_in, F_SETFL, fcntl(relay_in, F_GETFL) | O_NONBLOCK);
  for (;;) {
    struct pollfd p[4] = {
      {.fd = out_open ? relay_out : -1, .events = POLLIN},
      {.fd = err_open ? relay_err : -1, .events = POLLIN},
      {.fd = in_open ? (in_len ? relay_in : STDIN_FILENO) : -1, .events = in_len ? POLLOUT : POLLIN},
      {.fd = pidfd, .events = POLLIN},
    };
    /* without a pidfd (before Linux 5.3) the process's exit is looked for every 50 ms */
    int r = poll(p, 4, pidfd >= 0 ? -1 : 50);
    if (r < 0 && errno != EINTR) break;
    if (r < 0) continue;
    if (p[0].revents && copy_out(relay_out, STDOUT_FILENO, buf, sizeof buf) == 0) out_open = 0;
    if (p[1].revents && copy_out(relay_err, STDERR_FILENO, buf, sizeof buf) == 0) err_open = 0;
    if (in_open && p[2].revents) {
      if (!in_len) {
        ssize_t n = read(STDIN_FILENO, in, sizeof in);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
          in_open = 0; /* end of input: the process reads end of file too */
          close(relay_in);
          relay_in = -1;
        } else {
          in_len = (size_t)n;
          in_off = 0;
        }
      } else {
        ssize_t w = write(relay_in, in + in_off, in_len - in_off);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w <= 0) { /* the process closed its stdin */
          in_open = 0;
          close(relay_in);
          relay_in = -1;
        } else if ((in_off += (size_t)w) == in_len) {
          in_len = 0;
        }
      }
    }
    int exited = pidfd >= 0 && (p[3].revents & POLLIN) != 0;
    if (pidfd < 0) {
      siginfo_t si;
      memset(&si, 0, sizeof si);
      exited = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
    }
    if (exited || (!out_open && !err_open && !in_open)) break;
  }
  /* what the process wrote before it exited is in the pipes: drain it, without waiting for a
   * process it left behind that still holds them, and no more than a pipe holds (one that keeps
   * writing would keep this launcher forever) */
  fcntl(relay_out, F_SETFL, fcntl(relay_out, F_GETFL) | O_NONBLOCK);
  fcntl(relay_err, F_SETFL, fcntl(relay_err, F_GETFL) | O_NONBLOCK);
  int cap_reads = fcntl(relay_out, F_GETPIPE_SZ) / (int)sizeof buf + 2;
  if (cap_reads < 6) cap_reads = 6;
  for (int k = 0; out_open && k < cap_reads && copy_out(relay_out, STDOUT_FILENO, buf, sizeof buf) > 0; k++) {}
  for (int k = 0; err_open && k < cap_reads && copy_out(relay_err, STDERR_FILENO, buf, sizeof buf) > 0; k++) {}
  if (pidfd >= 0) close(pidfd);
}

static void foreground(pid_t pid, int with_pty) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  for (int sig = 1; sig < 32; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD || sig == SIGWINCH || sig == SIGTTIN ||
        sig == SIGTTOU || sig == SIGTSTP || sig == SIGPIPE || sig == SIGSEGV || sig == SIGBUS ||
        sig == SIGFPE || sig == SIGILL)
      continue;
    sigaction(sig, &sa, NULL);
  }
  signal(SIGPIPE, SIG_IGN);
  if (with_pty) {
    close(pty_sock[1]);
    console_fd = recv_fd(pty_sock[0]);
    close(pty_sock[0]);
    if (console_fd >= 0) {
      struct sigaction sw;
      memset(&sw, 0, sizeof sw);
      sw.sa_handler = sigwinch;
      sigaction(SIGWINCH, &sw, NULL);
      relay_pty();
    }
  } else if (relay_out >= 0) {
    relay_pipes(pid);
  }
  int code = wait_child(pid);
  restore_tty();
  _exit(code);
}

#include "seccomp.h"
#include "sched.h"
#include "ioprio.h"
#include "lsm.h"
#include "keyring.h"
#include "userns.h"
#include "cgroup.h"
#include "procenv.h"

/* ---- steps: one function each; a step returns 0, or -1 with errno set and `what` naming the call ---- */

static const char *what = "";

static void run_steps(struct step *steps, uint32_t n, uint32_t start);

static void step_clone(struct step *steps, uint32_t n, uint32_t i) {
  struct step *s = &steps[i];
  unsigned long flags = (unsigned long)I(s, 0);
  int detach = (int)I(s, 1);
  int with_pty = (int)I(s, 2) == 1;
  int relay = (int)I(s, 2) == 2 && !detach; /* relay_pipes */
  if (with_pty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pty_sock) < 0) die((int)i, "socketpair", errno);
  int rp[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  if (relay)
    for (int k = 0; k < 3; k++)
      if (pipe2(rp[k], O_CLOEXEC) < 0) die((int)i, "pipe", errno);
  /* the child waits on this pipe until its pid is reported: its own messages must come after */
  int order[2];
  if (pipe2(order, O_CLOEXEC) < 0) die((int)i, "pipe", errno);
  const char *cgroup = S(s, 3); /* cgroup.h: created in this cgroup2 directory */
  int into_cgroup = cgroup != NULL || cgroup_dir_fd >= 0;
  /* Into a pid namespace the container's processes are in (exec), the child is theirs to see
   * from its first instruction, and every fd open here at the clone is its: the host's procfs
   * handle is closed first (the parent needs it no more), and the child makes its own. */
  int own_proc_only = 0;
  if (!(flags & CLONE_NEWPID) && proc_fd >= 0 && children_join_pidns() && can_own_proc()) {
    close(proc_fd);
    proc_fd = -1;
    own_proc_only = 1;
  }
  pid_t pid = clone_into_cgroup(flags, cgroup);
  if (pid < 0) die((int)i, into_cgroup ? "clone3" : "clone", errno);
  if (pid == 0) {
    /* cgroup.h: the parent moves us into the v1 cgroups; the host's tasks files are not ours */
    for (int k = 0; k < cgroup_tasks_n; k++) close(cgroup_tasks_fds[k]);
    cgroup_tasks_n = 0;
    /* paths.h: no fd of the host's procfs while the container can see this process; in a new
     * user namespace only once its maps are written (the parent does that while we wait) */
    if (!(flags & CLONE_NEWUSER)) own_proc();
    if (relay) {
      /* stdin from the first pipe, stdout and stderr into the others (dup2 clears close-on-exec) */
      if (dup2(rp[0][0], STDIN_FILENO) < 0 || dup2(rp[1][1], STDOUT_FILENO) < 0 || dup2(rp[2][1], STDERR_FILENO) < 0)
        _exit(1);
      for (int k = 0; k < 3; k++) {
        close(rp[k][0]);
        close(rp[k][1]);
      }
    }
    close(order[1]);
    char b;
    ssize_t k;
    do k = read(order[0], &b, 1); while (k < 0 && errno == EINTR);
    close(order[0]);
    if (k != 1) _exit(1);
    if (flags & CLONE_NEWUSER) own_proc();
    /* (after the order pipe: the child's messages come after the parent's report of its pid) */
    if (own_proc_only && proc_fd < 0) die((int)i, "make a procfs of the container's pid namespace (fsopen)", errno ? errno : ENOENT);
    if (with_pty) close(pty_sock[0]);
    run_steps(steps, n, i + 1);
    _exit(0);
  }
  close(order[0]);
  if (cgroup_tasks_n && cgroup_tasks_for(pid) < 0) {
    int e = errno;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    die((int)i, "write tasks", e);
  }
  if (relay) {
    close(rp[0][0]);
    close(rp[1][1]);
    close(rp[2][1]);
    relay_in = rp[0][1];
    relay_out = rp[1][0];
    relay_err = rp[2][0];
  }
  close_cgroup_fds(); /* the child's copies of OP_CGROUP_OPEN's tasks files are its own */
  child_pid = pid;
  send_msg(MSG_PID, (int)i, 0, pid, "clone");
  idmap_after_clone(pid, flags); /* userns.h: the maps, while the child still waits */
  close_trees();                 /* userns.h: the child attaches its copies */
  if (write(order[1], "p", 1) != 1) die((int)i, "write", errno);
  close(order[1]);
  if (detach) _exit(0);
  /* from here on only the container speaks on the socket: its end closing means exec or death */
  close(sync_fd);
  sync_fd = -1;
  foreground(pid, with_pty);
}

/*
 * The container's /dev/console, bound to its terminal (the pty slave, by this fd: never a path
 * that something in the container could swap, CVE-2025-52565). The mount point is made in the
 * root's /dev (an empty file, as runc does) or an existing file or character device there; a
 * symlink or anything else is refused, never followed.
 */
static void mount_console(int slave, int i) {
  char base[16];
  what = "create /dev/console";
  int dir = parent_in_root("/dev/console", base, sizeof base);
  if (dir < 0) die(i, what, errno);
  mode_t old = umask(0);
  int f = openat(dir, base, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
  umask(old);
  if (f < 0 && errno != EEXIST) die(i, what, errno);
  if (f >= 0) close(f);
  what = "open /dev/console";
  int target = openat(dir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  int e = errno;
  close(dir);
  if (target < 0) die(i, what, e);
  struct stat st;
  if (fstat(target, &st) < 0) die(i, what, errno);
  if (S_ISLNK(st.st_mode)) die(i, "/dev/console is a symlink", ELOOP);
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) die(i, "/dev/console is not a file", S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  what = "bind the terminal onto /dev/console";
  if (bind_on_fd(NULL, slave, target, 0, 0, NULL, NULL) < 0) die(i, what, errno);
  close(target);
}

static dev_t pty_made = 0; /* the pty slave this launcher made (step_pty), to give to the process's user */

static void step_pty(struct step *s, int i) {
  /* Runs after pivot_root: /dev/ptmx is the container's devpts instance. */
  const char *socket_path = S(s, 0); /* a console socket (runc --console-socket), or the launcher's pair */
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) die(i, "open /dev/ptmx", errno);
  if (unlockpt(master) < 0) die(i, "unlockpt", errno);
  char name[128];
  if (ptsname_r(master, name, sizeof name) != 0) die(i, "ptsname", errno);
  int slave = open(name, O_RDWR | O_NOCTTY);
  if (slave < 0) die(i, "open pty slave", errno);
  /* A pty handed to a console socket keeps the kernel's defaults (ONLCR on), as runc and crun
   * hand it: docker, podman, containerd and kubectl relay its bytes to a raw terminal as they
   * are. One this launcher relays itself has ONLCR off, as runc's own: the host terminal's
   * output processing (kept on in relay_pty) turns \n into \r\n once, and a redirected stdout
   * gets the lines as written. */
  if (!socket_path) {
    struct termios tio;
    if (tcgetattr(slave, &tio) == 0) {
      tio.c_oflag &= ~(tcflag_t)ONLCR;
      tcsetattr(slave, TCSANOW, &tio);
    }
  }
  int rows = (int)I(s, 1), cols = (int)I(s, 2);
  if (rows > 0 && cols > 0) {
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(slave, TIOCSWINSZ, &ws);
  }
  if (I(s, 4)) mount_console(slave, i);
  struct stat sst;
  if (fstat(slave, &sst) == 0) pty_made = sst.st_rdev;
  if (socket_path) {
    /* connected before pivot_root by the first OP_PTY step (phase 0) */
    if (send_fd(console_fd, master) < 0) die(i, "send console fd", errno);
    close(console_fd);
  } else {
    if (send_fd(pty_sock[1], master) < 0) die(i, "send console fd", errno);
    close(pty_sock[1]);
  }
  close(master);
  if (setsid() < 0 && errno != EPERM) die(i, "setsid", errno);
  if (ioctl(slave, TIOCSCTTY, 0) < 0) die(i, "ioctl TIOCSCTTY", errno);
  for (int fd = 0; fd < 3; fd++)
    if (dup2(slave, fd) < 0) die(i, "dup2 pty", errno);
  if (slave > 2) close(slave);
}

#include "pidfd.h"

static int in_root(struct step *s) { return (s->flags & FLAG_IN_ROOT) != 0; }

/* The step's target: a path in the container's root, or (for the runtime's own paths) a host path. */
static int open_target(struct step *s, const char *path, int oflags) {
  return in_root(s) ? open_in_root(path, oflags) : open(path, O_PATH | O_CLOEXEC | oflags);
}

struct reopen_arg {
  struct step *s;
  const char *path;
};
static int reopen_target(void *arg) {
  struct reopen_arg *a = arg;
  return open_target(a->s, a->path, 0);
}

static int step_setns(struct step *s) {
  what = "setns";
  int nstype = (int)I(s, 1);
  int given = (int)I(s, 2); /* a pidfd (or namespace fd) passed by the runtime: no path to race */
  if (given > 0) return setns(given, nstype);
  int fd = open(Sx(s, 0), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    what = "open namespace";
    return -1;
  }
  int r = setns(fd, nstype);
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

static int step_unshare(struct step *s) {
  what = "unshare";
  return unshare((int)I(s, 0));
}

static int step_sync(struct step *s, int i) {
  send_msg(MSG_SYNC, i, 0, (int)I(s, 0), "sync");
  char go;
  ssize_t k;
  do k = read(sync_fd, &go, 1); while (k < 0 && errno == EINTR);
  if (k != 1) _exit(1); /* the parent gave up: stop quietly, it already knows why */
  if (go != 'g') die(i, "sync: parent aborted", ECANCELED);
  userns_after_sync(); /* userns.h */
  return 0;
}

static int step_root(struct step *s) {
  what = "open root";
  int fd = open(Sx(s, 0), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  set_root(fd);
  return 0;
}

/* Directories a FLAG_NOTE_MADE mkdir made: a tmpfs mounted on one keeps its own mode (step_mount). */
static struct { dev_t dev; ino_t ino; } made_dirs[32];
static int n_made_dirs = 0;

static int made_dir(const struct stat *st) {
  for (int k = 0; k < n_made_dirs; k++)
    if (made_dirs[k].dev == st->st_dev && made_dirs[k].ino == st->st_ino) return 1;
  return 0;
}

/*
 * An empty file to bind onto, made relative to its parent's fd (never opened: it could be a
 * fifo). One already there is fine; a dangling link there (/etc/hosts -> /run/x/hosts) has the
 * file made where it leads, in the root (expand_dangling), as runc's MkdirAllInRoot does.
 */
static int make_file_in_root(const char *p, mode_t mode) {
  char base[256], path[4096];
  for (int round = 0;; round++) {
    what = "create parent directories";
    int dir = parent_in_root(p, base, sizeof base);
    if (dir < 0) return -1;
    what = "mknod";
    int r = mknodat(dir, base, S_IFREG | (mode & 07777), 0);
    int dangling = 0;
    if (r < 0 && errno == EEXIST) {
      r = 0;
      struct stat st;
      if (round == 0 && fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        int probe = open_in_root(p, 0);
        if (probe >= 0) close(probe);
        else if (errno == ENOENT) dangling = 1;
      }
    }
    int e = errno;
    close(dir);
    if (!dangling) return errno = e, r;
    if (expand_dangling(p, path, sizeof path) < 0) return -1;
    p = path;
  }
}

/* A bind mount's target in the root, made to match its source: a directory, or an empty file. */
static int make_bind_target(int src_fd, const char *dst) {
  struct stat st;
  what = "stat mount source";
  if (fstat(src_fd, &st) < 0) return -1;
  if (S_ISDIR(st.st_mode)) {
    what = "create mount target directory";
    int fd = mkdir_in_root(dst, 0755);
    if (fd < 0) return -1;
    close(fd);
    return 0;
  }
  return make_file_in_root(dst, 0644);
}

static int step_mount(struct step *s) {
  const char *src = S(s, 0), *dst = Sx(s, 1), *type = S(s, 2), *data = S(s, 4);
  unsigned long flags = (unsigned long)I(s, 3);
  unsigned long prop = flags & (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE);
  /* procfs and sysfs only on an ordinary directory: a symlink there (or a file) is refused,
   * never followed (CVE-2019-19921, CVE-2023-27561: an image choosing where /proc lands) */
  int kernfs = type && !(flags & (MS_BIND | MS_REMOUNT)) && (strcmp(type, "proc") == 0 || strcmp(type, "sysfs") == 0);
  int src_fd = -1;
  if ((flags & MS_BIND) && !(flags & MS_REMOUNT) && (s->flags & FLAG_SOURCE_IN_ROOT)) {
    /* a source in the rootfs: resolved in the root now (after the mounts before it), and the
     * target made to match it, a directory or a file, as runc does */
    what = "open mount source (in the root)";
    src_fd = open_in_root(Sx(s, 0), 0);
    if (src_fd < 0) return -1;
    if (make_bind_target(src_fd, dst) < 0) {
      int e = errno;
      close(src_fd);
      return errno = e, -1;
    }
  }
  what = "open mount target";
  int tfd = open_target(s, dst, kernfs ? O_NOFOLLOW : 0);
  if (tfd < 0) {
    int e = errno;
    if (src_fd >= 0) close(src_fd);
    return errno = e, -1;
  }
  if (kernfs) {
    struct stat st = {0};
    if (fstat(tfd, &st) < 0 || !S_ISDIR(st.st_mode)) {
      close(tfd);
      what = "must be mounted on ordinary directory"; /* runc's words */
      errno = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
      return -1;
    }
  }
  int r, copy_from = -1;
  what = "mount";
  if ((flags & MS_REMOUNT) || (prop && !(flags & MS_BIND))) {
    r = remount_fd(tfd, flags, data);
  } else if (flags & MS_BIND) {
    struct reopen_arg a = {s, dst};
    r = bind_on_fd(src, src_fd, tfd, (flags & MS_REC) != 0, flags & ~(MS_BIND | MS_REC), reopen_target, &a);
  } else {
    if (s->flags & FLAG_TMPCOPYUP) {
      /* the directory as it is before the mount hides it ("." never crosses onto the new mount) */
      what = "open (tmpcopyup)";
      copy_from = openat(tfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (copy_from < 0) {
        close(tfd);
        return -1;
      }
      what = "mount";
    }
    /* a tmpfs without mode= takes the mode of the directory it covers (runc 1.1.10+), not 1777;
     * on a directory made for it (step_mkdir's FLAG_NOTE_MADE), tmpfs's own 1777 */
    char tmpfs_data[4096];
    struct stat dst_st;
    if (type && strcmp(type, "tmpfs") == 0 && !(data && (strncmp(data, "mode=", 5) == 0 || strstr(data, ",mode="))) &&
        fstat(tfd, &dst_st) == 0 && S_ISDIR(dst_st.st_mode) && !made_dir(&dst_st)) {
      snprintf(tmpfs_data, sizeof tmpfs_data, "%s%smode=%o", data ? data : "", data && *data ? "," : "",
               (unsigned)(dst_st.st_mode & 07777));
      data = tmpfs_data;
    }
    r = mount_on_fd(src, tfd, type, flags, data);
    if (r == 0 && copy_from >= 0) {
      what = "copy up (tmpcopyup)";
      int top = open_target(s, dst, O_DIRECTORY);
      int to = top < 0 ? -1 : openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      r = to < 0 ? -1 : copy_tree(copy_from, to, 0);
      int e = errno;
      if (top >= 0) close(top);
      if (to >= 0) close(to);
      errno = e;
    }
  }
  int e = errno;
  if (copy_from >= 0) close(copy_from);
  if (src_fd >= 0) close(src_fd);
  close(tfd);
  errno = e;
  return r;
}

static int step_umount(struct step *s) {
  what = "umount2";
  return umount2(Sx(s, 0), (int)I(s, 1));
}

static int reopen_in_root(void *path) { return open_in_root((const char *)path, 0); }

/* readonlyPaths: the path bound onto itself read-only, submounts included. */
static int step_readonly(struct step *s) {
  const char *p = Sx(s, 0);
  what = "open";
  int fd = open_in_root(p, 0);
  if (fd < 0) return -1;
  what = "mount";
  int r = bind_on_fd(NULL, fd, fd, 1, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, reopen_in_root, (void *)p);
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

/* maskedPaths: a directory gets an empty read-only tmpfs, anything else the container's /dev/null. */
static int step_mask(struct step *s) {
  const char *p = Sx(s, 0);
  what = "open";
  int fd = open_in_root(p, 0);
  if (fd < 0) return -1;
  struct stat st;
  int r = fstat(fd, &st);
  if (r == 0 && S_ISDIR(st.st_mode)) {
    /* arg 1: more tmpfs options, an SELinux context= (linux.mountLabel), as runc's maskPath */
    const char *extra = s->nargs > 1 ? Sx(s, 1) : "";
    char data[4096];
    if (snprintf(data, sizeof data, "size=0,mode=0755%s%s", *extra ? "," : "", extra) >= (int)sizeof data) {
      close(fd);
      what = "mask options";
      errno = E2BIG;
      return -1;
    }
    what = "mount";
    r = mount_on_fd("tmpfs", fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, data);
    if (r < 0 && errno == EINVAL) r = mount_on_fd("tmpfs", fd, "tmpfs", MS_RDONLY, *extra ? extra : NULL);
  } else if (r == 0) {
    what = "open /dev/null (to mask with)";
    int null = open_in_root("/dev/null", O_NOFOLLOW);
    struct stat ns;
    if (null < 0) {
      r = -1;
    } else if (fstat(null, &ns) < 0 || !S_ISCHR(ns.st_mode) || ns.st_rdev != makedev(1, 3)) {
      what = "check /dev/null (to mask with): not the null device";
      errno = EPERM;
      r = -1;
    } else {
      what = "mount";
      r = bind_on_fd(NULL, null, fd, 0, 0, NULL, NULL);
    }
    int e = errno;
    if (null >= 0) close(null);
    errno = e;
  }
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

static int step_mkdir(struct step *s) {
  what = "mkdir";
  if (!in_root(s)) return mkdir_p(Sx(s, 0), (mode_t)I(s, 1));
  int existed = 1;
  if (s->flags & FLAG_NOTE_MADE) {
    int probe = open_in_root(Sx(s, 0), O_DIRECTORY);
    if (probe >= 0) close(probe);
    else existed = 0;
  }
  int fd = mkdir_in_root(Sx(s, 0), (mode_t)I(s, 1));
  if (fd < 0) return -1;
  struct stat st;
  if (!existed && n_made_dirs < (int)(sizeof made_dirs / sizeof made_dirs[0]) && fstat(fd, &st) == 0) {
    made_dirs[n_made_dirs].dev = st.st_dev;
    made_dirs[n_made_dirs].ino = st.st_ino;
    n_made_dirs++;
  }
  close(fd);
  return 0;
}

/* A file to bind a file onto: made relative to its parent's fd, never opened (it could be a fifo). */
static int step_mkfile(struct step *s) {
  const char *p = Sx(s, 0);
  mode_t mode = (mode_t)I(s, 1) & 07777;
  what = "mknod";
  if (!in_root(s)) {
    if (mknod(p, S_IFREG | mode, 0) < 0 && errno != EEXIST) return -1;
    return 0;
  }
  return make_file_in_root(p, mode);
}

/*
 * A device node (or fifo), made relative to its parent's fd with exactly its
 * mode (umask 0) and owned with AT_SYMLINK_NOFOLLOW. The same node already there
 * is left alone; anything else at the path is an error (EEXIST, config-linux.md):
 * nothing is ever chowned or chmodded through a path.
 */
static int step_mknod(struct step *s) {
  const char *p = Sx(s, 0);
  mode_t mode = (mode_t)I(s, 1);
  dev_t dev = makedev((unsigned)I(s, 2), (unsigned)I(s, 3));
  uid_t uid = (uid_t)I(s, 4);
  gid_t gid = (gid_t)I(s, 5);
  char base[256];
  int dir;
  if (in_root(s)) {
    what = "create parent directories";
    dir = parent_in_root(p, base, sizeof base);
  } else {
    /* the runtime's own path (the exec fifo in its state directory) */
    what = "open";
    char d[4096];
    snprintf(d, sizeof d, "%s", p);
    char *slash = strrchr(d, '/');
    if (!slash || !slash[1] || strlen(slash + 1) >= sizeof base) return errno = EINVAL, -1;
    strcpy(base, slash + 1);
    *slash = 0;
    dir = open(*d ? d : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  if (dir < 0) return -1;
  what = "mknod";
  mode_t old = umask(0);
  int r = mknodat(dir, base, mode, dev);
  umask(old);
  if (r == 0) {
    what = "chown";
    r = fchownat(dir, base, uid, gid, AT_SYMLINK_NOFOLLOW);
  } else if (errno == EEXIST) {
    /* the same node already there is fine; anything else (a file, a link, another device) is an error */
    struct stat st;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == (mode & S_IFMT) &&
        (S_ISFIFO(st.st_mode) || st.st_rdev == dev))
      r = 0;
    else
      errno = EEXIST;
  }
  int e = errno;
  close(dir);
  errno = e;
  return r;
}

static int step_symlink(struct step *s) {
  const char *target = Sx(s, 0), *p = Sx(s, 1);
  what = "symlink";
  if (!in_root(s)) {
    int r = symlink(target, p);
    return r < 0 && errno == EEXIST ? 0 : r;
  }
  char base[256];
  int dir = parent_in_root(p, base, sizeof base);
  if (dir < 0) return -1;
  int r = symlinkat(target, dir, base);
  if (r < 0 && errno == EEXIST) r = 0;
  int e = errno;
  close(dir);
  errno = e;
  return r;
}

static int step_pivot_root(struct step *s) {
  int r;
  what = "chdir";
  r = root_fd >= 0 ? fchdir(root_fd) : chdir(Sx(s, 0));
  if (r < 0) return -1;
  /* the old root, held so that only its tree is made a slave below (never the new root's mounts) */
  what = "open /";
  int old_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (old_root < 0) return -1;
  what = "pivot_root";
  if (syscall(SYS_pivot_root, ".", ".") < 0) {
    int e = errno;
    close(old_root);
    return errno = e, -1;
  }
  /* keep the unmount of the old root from propagating to the host */
  what = "mount";
  r = remount_fd(old_root, MS_SLAVE | MS_REC, NULL);
  int e = errno;
  close(old_root);
  errno = e;
  if (r < 0) return -1;
  what = "umount2";
  if (umount2(".", MNT_DETACH) < 0) return -1;
  what = "chdir";
  if (chdir("/") < 0) return -1;
  set_root(-1); /* from here on the container's paths are relative to the new "/" */
  return current_root() < 0 ? -1 : 0;
}

static int step_chroot(struct step *s) {
  what = "chroot";
  if (chroot(Sx(s, 0)) < 0 || chdir("/") < 0) return -1;
  set_root(-1);
  return 0;
}

static int step_sethostname(struct step *s) {
  what = "sethostname";
  return sethostname(Sx(s, 0), strlen(Sx(s, 0)));
}

static int step_setdomainname(struct step *s) {
  what = "setdomainname";
  return setdomainname(Sx(s, 0), strlen(Sx(s, 0)));
}

static int step_setrlimit(struct step *s) {
  what = "setrlimit";
  struct rlimit rl = {.rlim_cur = (rlim_t)I(s, 1), .rlim_max = (rlim_t)I(s, 2)};
  return setrlimit((int)I(s, 0), &rl);
}

static int step_no_new_privs(struct step *s) {
  (void)s;
  what = "prctl PR_SET_NO_NEW_PRIVS";
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* args: uid, gid, has_caps, bounding, effective, permitted, inheritable, ambient, groups... */
static int step_creds(struct step *s) {
  uid_t uid = (uid_t)I(s, 0);
  gid_t gid = (gid_t)I(s, 1);
  int has_caps = (int)I(s, 2);
  uint64_t bnd = (uint64_t)I(s, 3), eff = (uint64_t)I(s, 4), perm = (uint64_t)I(s, 5);
  uint64_t inh = (uint64_t)I(s, 6), amb = (uint64_t)I(s, 7);
  if (has_caps) {
    /* Every capability number the kernel may know, not as many as /proc/sys/kernel/cap_last_cap
     * says: by now that is the container's /proc (a process of an exec'd-into container, or an
     * image with no /proc mounted, could make it say 0 and keep every capability). EINVAL: a
     * number this kernel does not have. */
    for (int c = 0; c < 64; c++) {
      if (bnd & (1ULL << c)) continue;
      what = "prctl PR_CAPBSET_DROP";
      if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
  }
  /* The terminal made for the process is the process's user's, as runc and crun do (its uid only:
   * devpts gives the group). Only that pty: a file or pipe the caller passed as stdio is never
   * chowned (runc chowns any stdio but /dev/null). Not mapped, or on a read-only /dev: left. */
  struct stat st0;
  if (pty_made && fstat(STDIN_FILENO, &st0) == 0 && S_ISCHR(st0.st_mode) && st0.st_rdev == pty_made &&
      st0.st_uid != uid) {
    what = "chown the terminal";
    if (fchown(STDIN_FILENO, uid, (gid_t)-1) < 0 && errno != EPERM && errno != EROFS && errno != EINVAL) return -1;
  }
  what = "prctl PR_SET_KEEPCAPS";
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return -1;
  uint32_t ng = s->nargs > 8 ? s->nargs - 8 : 0;
  gid_t groups[ng ? ng : 1];
  for (uint32_t g = 0; g < ng; g++) groups[g] = (gid_t)I(s, 8 + g);
  /* (uid_t)-1 is "leave unchanged" to setresuid/setresgid: the process would stay root. The runtime
   * refuses it; so does the launcher, whatever a plan says. */
  what = "setresuid";
  if (uid == (uid_t)-1 || gid == (gid_t)-1) {
    errno = EINVAL;
    return -1;
  }
  what = "setgroups";
  for (uint32_t g = 0; g < ng; g++)
    if (groups[g] == (gid_t)-1) {
      errno = EINVAL;
      return -1;
    }
  if (setgroups(ng, groups) < 0 &&
      !(ng == 0 && errno == EPERM && (userns_setgroups_denied || inherited_setgroups_denied)))
    return -1;
  what = "setresgid";
  if (syscall(SYS_setresgid, gid, gid, gid) < 0) return -1;
  what = "setresuid";
  if (syscall(SYS_setresuid, uid, uid, uid) < 0) return -1;
  what = "prctl PR_SET_KEEPCAPS";
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return -1;
  if (has_caps) {
    what = "capset";
    if (set_caps(eff, perm, inh) < 0) return -1;
    what = "prctl PR_CAP_AMBIENT_CLEAR_ALL";
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    what = "prctl PR_CAP_AMBIENT_RAISE";
    for (int c = 0; c < 64; c++)
      if ((amb & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) return -1;
  }
  return 0;
}

/* The process's working directory, resolved in the container's root: no magic link, no fd, leads out. */
/*
 * args: path, first. The process's working directory is tried first while still root (args
 * first = 1: a directory the user cannot enter but root can, as runc does); EACCES or EPERM
 * there leaves it to the chdir after the user change (a directory only the user may enter).
 */
static int chdir_done = 0;
static int step_chdir(struct step *s) {
  what = "chdir";
  if (chdir_done) return 0;
  int first = (int)I(s, 1);
  int r;
  if (!in_root(s)) {
    r = chdir(Sx(s, 0));
  } else {
    int fd = open_in_root(Sx(s, 0), O_DIRECTORY);
    if (fd < 0) {
      r = -1;
    } else {
      r = fchdir(fd);
      int e = errno;
      close(fd);
      errno = e;
    }
  }
  if (r == 0) chdir_done = first;
  else if (first && (errno == EACCES || errno == EPERM)) r = 0;
  return r;
}

static int step_umask(struct step *s) {
  umask((mode_t)I(s, 0));
  return 0;
}

static int step_proc_write(struct step *s) {
  what = "write";
  return proc_write(Sx(s, 0), Sx(s, 1));
}

static int step_setsid(struct step *s) {
  (void)s;
  what = "setsid";
  return setsid() < 0 ? -1 : 0;
}

static int step_fifo_open(struct step *s) {
  what = "open";
  fifo_fd = open(Sx(s, 0), O_PATH | O_CLOEXEC);
  return fifo_fd < 0 ? -1 : 0;
}

/* blocks until `start` opens the fifo for reading */
static int step_fifo_wait(struct step *s) {
  (void)s;
  char path[64];
  snprintf(path, sizeof path, "self/fd/%d", fifo_fd);
  what = "open exec fifo";
  int fd = proc_fd >= 0 ? openat(proc_fd, path, O_WRONLY | O_CLOEXEC) : -1;
  if (fd < 0 && proc_fd < 0) errno = ENOENT;
  if (fd < 0) return -1;
  what = "write exec fifo";
  int r = write(fd, "0", 1) == 1 ? 0 : -1;
  int e = errno;
  close(fd);
  close(fifo_fd);
  fifo_fd = -1;
  errno = e;
  return r;
}

/* Every fd from `first` up is closed at exec (marked close-on-exec), whatever the fd limit. */
static int step_close_fds(struct step *s) {
  what = "close_range";
  unsigned first = (unsigned)I(s, 0);
  if (syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) == 0) return 0;
  /* no close_range (ENOSYS, EINVAL before Linux 5.11), or a seccomp filter already in force
   * that refuses it (EPERM: a profile without close_range, applied before the credentials
   * change as runc does): list the open fds instead of guessing a limit */
  int dfd = proc_fd >= 0 ? openat(proc_fd, "self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd < 0) return -1;
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return -1;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd >= (int)first && fd != dfd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  closedir(d);
  return 0;
}

static int step_pty_connect(struct step *s) {
  /* first half, before pivot_root: connect to the host's console socket */
  what = "connect console socket";
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  const char *p = Sx(s, 0);
  if (strlen(p) >= sizeof sa.sun_path) return errno = ENAMETOOLONG, -1;
  strcpy(sa.sun_path, p);
  console_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return console_fd < 0 ? -1 : connect(console_fd, (struct sockaddr *)&sa, sizeof sa);
}

/*
 * May the process execute `path`, by its effective ids and capabilities (CAP_DAC_OVERRIDE),
 * as execve decides? faccessat2(AT_EACCESS); where it is missing (before Linux 5.8) or a
 * seccomp profile already in force refuses it (EPERM, which access never returns for X_OK),
 * the old faccessat: this runs after the credentials change, so real and effective ids agree.
 */
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
static int may_exec(const char *path) {
  if (syscall(SYS_faccessat2, AT_FDCWD, path, X_OK, AT_EACCESS) == 0) return 0;
  if (errno != ENOSYS && errno != EPERM) return -1;
  return (int)syscall(SYS_faccessat, AT_FDCWD, path, X_OK);
}

/* args: name, PATH value. Resolve before waiting so a missing binary fails at create time. */
static int step_lookup(struct step *s) {
  const char *name = Sx(s, 0);
  what = "exec";
  if (strchr(name, '/')) {
    snprintf(resolved, sizeof resolved, "%s", name);
    return may_exec(resolved);
  }
  const char *pathv = S(s, 1) ? S(s, 1) : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  int last_err = ENOENT;
  const char *p = pathv;
  while (*p) {
    const char *e = strchr(p, ':');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    snprintf(resolved, sizeof resolved, "%.*s/%s", (int)len, len ? p : ".", name);
    struct stat st;
    if (stat(resolved, &st) == 0 && S_ISREG(st.st_mode)) {
      if (may_exec(resolved) == 0) return 0;
      last_err = errno;
    }
    if (!e) break;
    p = e + 1;
  }
  errno = last_err;
  return -1;
}

/* args: path ("" = the LOOKUP result), argc, argv..., env... */
static int step_exec(struct step *s, int i) {
  const char *path = S(s, 0) ? S(s, 0) : resolved;
  uint32_t argc = (uint32_t)I(s, 1);
  if (argc + 2 > s->nargs) die(i, "exec: bad plan", EINVAL);
  uint32_t envc = s->nargs - 2 - argc;
  char **argv = calloc(argc + 1, sizeof *argv);
  char **envp = calloc(envc + 2, sizeof *envp);
  if (!argv || !envp) die(i, "exec", ENOMEM);
  for (uint32_t a = 0; a < argc; a++) argv[a] = s->args[2 + a].s;
  int has_home = 0;
  for (uint32_t a = 0; a < envc; a++) {
    envp[a] = s->args[2 + argc + a].s;
    if (strncmp(envp[a], "HOME=", 5) == 0) {
      if (!envp[a][5] && home_env[0]) envp[a] = home_env; /* an empty HOME is none (runc) */
      has_home = 1;
    }
  }
  if (home_env[0] && !has_home) envp[envc] = home_env; /* OP_HOME */
  /* nothing of the runtime's stays reachable through /proc/self/fd while the path is looked up */
  if (proc_fd >= 0) close(proc_fd);
  proc_fd = -1;
  set_root(-1);
  signal(SIGPIPE, SIG_DFL);
  execve(path, argv, envp);
  what = "exec";
  return -1;
}

static int step_test_walk(struct step *s) {
  force_walk = (int)I(s, 0);
  return 0;
}

static void run_steps(struct step *steps, uint32_t n, uint32_t start) {
  for (uint32_t i = start; i < n; i++) {
    struct step *s = &steps[i];
    int r;
    what = "";
    switch (s->op) {
      case OP_SETNS: r = step_setns(s); break;
      case OP_UNSHARE: r = step_unshare(s); break;
      case OP_CLONE: step_clone(steps, n, i); return;
      case OP_SYNC: r = step_sync(s, (int)i); break;
      case OP_READY: send_msg(MSG_READY, (int)i, 0, 0, "ready"); r = 0; break;
      case OP_ROOT: r = step_root(s); break;
      case OP_MOUNT: r = step_mount(s); break;
      case OP_UMOUNT: r = step_umount(s); break;
      case OP_READONLY: r = step_readonly(s); break;
      case OP_MASK: r = step_mask(s); break;
      case OP_MKDIR: r = step_mkdir(s); break;
      case OP_MKFILE: r = step_mkfile(s); break;
      case OP_MKNOD: r = step_mknod(s); break;
      case OP_SYMLINK: r = step_symlink(s); break;
      case OP_PIVOT_ROOT: r = step_pivot_root(s); break;
      case OP_CHROOT: r = step_chroot(s); break;
      case OP_SETHOSTNAME: r = step_sethostname(s); break;
      case OP_SETDOMAINNAME: r = step_setdomainname(s); break;
      case OP_SETRLIMIT: r = step_setrlimit(s); break;
      case OP_NO_NEW_PRIVS: r = step_no_new_privs(s); break;
      case OP_CREDS: r = step_creds(s); break;
      case OP_CHDIR: r = step_chdir(s); break;
      case OP_UMASK: r = step_umask(s); break;
      case OP_PROC_WRITE: r = step_proc_write(s); break;
      case OP_SETSID: r = step_setsid(s); break;
      case OP_FIFO_OPEN: r = step_fifo_open(s); break;
      case OP_FIFO_WAIT: r = step_fifo_wait(s); break;
      case OP_CLOSE_FDS: r = step_close_fds(s); break;
      case OP_PTY:
        if (I(s, 3) == 0) r = step_pty_connect(s);
        else {
          step_pty(s, (int)i);
          r = 0;
        }
        break;
      case OP_LOOKUP: r = step_lookup(s); break;
      case OP_EXEC: r = step_exec(s, (int)i); break;
      case OP_TEST_WALK: r = step_test_walk(s); break;
      case OP_PIDFD_SETNS: r = step_pidfd_setns(s); break;
      case OP_PIDFD_KILL: r = step_pidfd_kill(s); break;
      case OP_SECCOMP: step_seccomp(s, (int)i); r = 0; break;
      case OP_SCHED: what = "sched_setattr"; r = step_sched(s); break;
      case OP_IOPRIO: r = step_ioprio(s, &what); break;
      case OP_LSM: r = step_lsm(s, &what); break;
      case OP_KEYRING: r = step_keyring(s, &what); break;
      case OP_IDMAP: r = step_idmap(steps, n, i, &what); break;
      case OP_USERNS_ROOT: r = step_userns_root(s, &what); break;
      case OP_IDMAP_USERNS: r = step_idmap_userns(s, &what); break;
      case OP_IDMAP_BIND: r = step_idmap_bind(s, open_target, &what); break;
      case OP_ROOT_REBIND: r = step_root_rebind(&what); break;
      case OP_IDMAP_TREE: r = step_idmap_tree(s, &what); break;
      case OP_BIND_TREE: r = step_bind_tree(s, open_target, &what); break;
      case OP_CGROUP_JOIN: r = step_cgroup_join(s, &what); break;
      case OP_CGROUP_OPEN: r = step_cgroup_open(s, &what); break;
      case OP_LOOPBACK: r = step_loopback(&what); break;
      case OP_HOME: r = step_home(s, &what); break;
      default: die((int)i, "unknown step", EINVAL);
    }
    if (r < 0) {
      if ((s->flags & FLAG_IGNORE_ENOENT) && errno == ENOENT) continue;
      die((int)i, what, errno);
    }
  }
}

/*
 * The launcher never runs from a file the container could reach: unless it
 * already is one, it copies itself into a sealed memfd and re-executes from
 * there (the CVE-2019-5736 class: /proc/PID/exe opened for writing from
 * inside). It is also not dumpable until its final execve, so no process in
 * the container can ptrace it or open its /proc files.
 */
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

static void run_sealed(char **argv) {
  int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0) return;
  int seals = fcntl(self, F_GET_SEALS);
  int want = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
  if (seals >= 0 && (seals & want) == want) {
    close(self);
    return; /* this is the sealed copy */
  }
  int mfd = (int)syscall(SYS_memfd_create, "berth-launcher", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0) die(-1, "memfd_create (sealed launcher copy)", errno);
  /* copied inside the kernel (sendfile), else through a buffer when sendfile cannot */
  struct stat st;
  off_t sent = 0;
  if (fstat(self, &st) == 0) {
    while (sent < st.st_size) {
      ssize_t k = sendfile(mfd, self, NULL, (size_t)(st.st_size - sent));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      sent += k;
    }
  }
  if (sent > 0 && sent != st.st_size) die(-1, "sendfile to memfd (sealed launcher copy)", errno ? errno : EIO);
  char buf[65536];
  while (sent == 0) {
    ssize_t k = read(self, buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) die(-1, "read /proc/self/exe (sealed launcher copy)", errno);
    if (k == 0) break;
    for (ssize_t off = 0; off < k;) {
      ssize_t w = write(mfd, buf + off, (size_t)(k - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) die(-1, "write memfd (sealed launcher copy)", errno);
      off += w;
    }
  }
  close(self);
  if (fcntl(mfd, F_ADD_SEALS, want) < 0) die(-1, "seal memfd (sealed launcher copy)", errno);
  extern char **environ;
  syscall(SYS_execveat, mfd, "", argv, environ, AT_EMPTY_PATH);
  die(-1, "execveat (sealed launcher copy)", errno);
}

/*
 * Every signal back to its default disposition. An ignored signal stays ignored across
 * execve, and the container's process must start as under runc or crun, with none ignored:
 * glibc's posix_spawn (library mode starts the launcher with it) leaves glibc's internal
 * signals 32 and 33 ignored in the child, and a caller may have ignored others. Through the
 * system call: musl's sigaction refuses its own internal signals (32-34).
 */
static void default_signals(void) {
  struct {
    unsigned long handler, flags, restorer, mask;
  } dfl = {0, 0, 0, 0}; /* the kernel's struct sigaction (x86_64, aarch64): SIG_DFL, no flags, empty mask */
  for (int sig = 1; sig <= 64; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("berth-launcher plan v%d\n", PLAN_VERSION);
    return 0;
  }
  const char *pf = getenv("BERTH_PLAN_FD"), *sf = getenv("BERTH_SYNC_FD");
  if (!pf || !sf) {
    fprintf(stderr, "berth-launcher: BERTH_PLAN_FD and BERTH_SYNC_FD must be set (this program is run by @berth/sys)\n");
    return 2;
  }
  sync_fd = atoi(sf);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die(-1, "prctl PR_SET_DUMPABLE", errno);
  run_sealed(argv);
  default_signals();
  int plan_fd = atoi(pf);
  fcntl(sync_fd, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  uint32_t n;
  struct step *steps = read_plan(plan_fd, &n);
  close(plan_fd);
  unsetenv("BERTH_PLAN_FD");
  unsetenv("BERTH_SYNC_FD");
  open_proc();
  inherited_setgroups_denied = setgroups_denied_here();
  run_steps(steps, n, 0);
  return 0;
}

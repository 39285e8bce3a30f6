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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
#define FLAG_IGNORE_ENOENT 1u

enum op {
  OP_SETNS = 1, OP_CLONE = 2, OP_SYNC = 3, OP_MOUNT = 4, OP_MKDIR = 5, OP_MKNOD = 6,
  OP_SYMLINK = 7, OP_PIVOT_ROOT = 8, OP_CHROOT = 9, OP_MASK = 10, OP_SETHOSTNAME = 11,
  OP_SETDOMAINNAME = 12, OP_SETRLIMIT = 13, OP_NO_NEW_PRIVS = 14, OP_CREDS = 15,
  OP_CHDIR = 16, OP_UMASK = 17, OP_FIFO_OPEN = 18, OP_FIFO_WAIT = 19, OP_EXEC = 20,
  OP_WRITE = 21, OP_SETSID = 22, OP_READY = 23, OP_MKFILE = 24, OP_LOOKUP = 25,
  OP_UMOUNT = 26, OP_READONLY = 27, OP_CLOSE_FDS = 28, OP_PTY = 29, OP_UNSHARE = 30,
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

/* ---- plan reading ---- */

static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
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

static unsigned long locked_flags(const char *path) {
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs(path, &sv) < 0) return 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  if (mount(src, dst, type, flags, data) == 0) return 0;
  /* A bind remount must keep flags the kernel locked on the original mount (user namespaces). */
  if (errno == EPERM && (flags & MS_REMOUNT) && (flags & MS_BIND))
    return mount(src, dst, type, flags | locked_flags(dst), data);
  return -1;
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

static int last_cap(void) {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 40;
  char b[16] = {0};
  ssize_t n = read(fd, b, sizeof b - 1);
  close(fd);
  return n > 0 ? atoi(b) : 40;
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
    cfmakeraw(&raw); /* the container's own pty already turns \n into \r\n */
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
      if (write(console_fd, buf, (size_t)n) < 0 && errno != EINTR) in_open = 0;
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
  }
  int code = wait_child(pid);
  restore_tty();
  _exit(code);
}

/* ---- steps ---- */

static void run_steps(struct step *steps, uint32_t n, uint32_t start);

static void step_clone(struct step *steps, uint32_t n, uint32_t i) {
  struct step *s = &steps[i];
  unsigned long flags = (unsigned long)I(s, 0);
  int detach = (int)I(s, 1);
  int with_pty = (int)I(s, 2);
  if (with_pty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pty_sock) < 0) die((int)i, "socketpair", errno);
  /* the child waits on this pipe until its pid is reported: its own messages must come after */
  int order[2];
  if (pipe2(order, O_CLOEXEC) < 0) die((int)i, "pipe", errno);
  pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) die((int)i, "clone", errno);
  if (pid == 0) {
    close(order[1]);
    char b;
    ssize_t k;
    do k = read(order[0], &b, 1); while (k < 0 && errno == EINTR);
    close(order[0]);
    if (k != 1) _exit(1);
    if (with_pty) close(pty_sock[0]);
    run_steps(steps, n, i + 1);
    _exit(0);
  }
  close(order[0]);
  child_pid = pid;
  send_msg(MSG_PID, (int)i, 0, pid, "clone");
  if (write(order[1], "p", 1) != 1) die((int)i, "write", errno);
  close(order[1]);
  if (detach) _exit(0);
  /* from here on only the container speaks on the socket: its end closing means exec or death */
  close(sync_fd);
  sync_fd = -1;
  foreground(pid, with_pty);
}

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
  int rows = (int)I(s, 1), cols = (int)I(s, 2);
  if (rows > 0 && cols > 0) {
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(slave, TIOCSWINSZ, &ws);
  }
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

static void run_steps(struct step *steps, uint32_t n, uint32_t start) {
  char *const *exec_env = NULL;
  for (uint32_t i = start; i < n; i++) {
    struct step *s = &steps[i];
    int ig = (s->flags & FLAG_IGNORE_ENOENT) != 0;
    int r = 0;
    const char *what = "";
    switch (s->op) {
      case OP_SETNS: {
        what = "setns";
        int fd = open(Sx(s, 0), O_RDONLY | O_CLOEXEC);
        if (fd < 0) die((int)i, "open namespace", errno);
        r = setns(fd, (int)I(s, 1));
        close(fd);
        break;
      }
      case OP_UNSHARE:
        what = "unshare";
        r = unshare((int)I(s, 0));
        break;
      case OP_CLONE:
        step_clone(steps, n, i);
        return;
      case OP_SYNC: {
        send_msg(MSG_SYNC, (int)i, 0, (int)I(s, 0), "sync");
        char go;
        ssize_t k;
        do k = read(sync_fd, &go, 1); while (k < 0 && errno == EINTR);
        if (k != 1) _exit(1); /* the parent gave up: stop quietly, it already knows why */
        if (go != 'g') die((int)i, "sync: parent aborted", ECANCELED);
        continue;
      }
      case OP_READY:
        send_msg(MSG_READY, (int)i, 0, 0, "ready");
        continue;
      case OP_MOUNT:
        what = "mount";
        r = do_mount(S(s, 0), Sx(s, 1), S(s, 2), (unsigned long)I(s, 3), S(s, 4));
        break;
      case OP_UMOUNT:
        what = "umount2";
        r = umount2(Sx(s, 0), (int)I(s, 1));
        break;
      case OP_READONLY: {
        what = "mount";
        const char *p = Sx(s, 0);
        r = mount(p, p, NULL, MS_BIND | MS_REC, NULL);
        if (r == 0) r = do_mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL);
        break;
      }
      case OP_MASK: {
        what = "mount";
        struct stat st;
        const char *p = Sx(s, 0);
        r = stat(p, &st);
        if (r == 0) {
          if (S_ISDIR(st.st_mode))
            r = mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL);
          else
            r = mount("/dev/null", p, NULL, MS_BIND, NULL);
        }
        break;
      }
      case OP_MKDIR:
        what = "mkdir";
        r = mkdir_p(Sx(s, 0), (mode_t)I(s, 1));
        break;
      case OP_MKFILE: {
        what = "open";
        int fd = open(Sx(s, 0), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, (mode_t)I(s, 1));
        if (fd < 0 && errno == EISDIR) fd = open(Sx(s, 0), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) r = -1;
        else close(fd);
        break;
      }
      case OP_MKNOD: {
        what = "mknod";
        const char *p = Sx(s, 0);
        r = mknod(p, (mode_t)I(s, 1), makedev((unsigned)I(s, 2), (unsigned)I(s, 3)));
        if (r < 0 && errno == EEXIST) r = 0;
        if (r == 0) {
          what = "chown";
          r = chown(p, (uid_t)I(s, 4), (gid_t)I(s, 5));
        }
        if (r == 0) {
          what = "chmod";
          r = chmod(p, (mode_t)I(s, 1) & 07777);
        }
        break;
      }
      case OP_SYMLINK:
        what = "symlink";
        r = symlink(Sx(s, 0), Sx(s, 1));
        if (r < 0 && errno == EEXIST) r = 0;
        break;
      case OP_PIVOT_ROOT: {
        const char *root = Sx(s, 0);
        what = "chdir";
        r = chdir(root);
        if (r == 0) {
          what = "pivot_root";
          r = (int)syscall(SYS_pivot_root, ".", ".");
        }
        if (r == 0) {
          /* keep the unmount of the old root from propagating to the host */
          what = "mount";
          r = mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL);
        }
        if (r == 0) {
          what = "umount2";
          r = umount2(".", MNT_DETACH);
        }
        if (r == 0) {
          what = "chdir";
          r = chdir("/");
        }
        break;
      }
      case OP_CHROOT:
        what = "chroot";
        r = chroot(Sx(s, 0));
        if (r == 0) r = chdir("/");
        break;
      case OP_SETHOSTNAME:
        what = "sethostname";
        r = sethostname(Sx(s, 0), strlen(Sx(s, 0)));
        break;
      case OP_SETDOMAINNAME:
        what = "setdomainname";
        r = setdomainname(Sx(s, 0), strlen(Sx(s, 0)));
        break;
      case OP_SETRLIMIT: {
        what = "setrlimit";
        struct rlimit rl = {.rlim_cur = (rlim_t)I(s, 1), .rlim_max = (rlim_t)I(s, 2)};
        r = setrlimit((int)I(s, 0), &rl);
        break;
      }
      case OP_NO_NEW_PRIVS:
        what = "prctl PR_SET_NO_NEW_PRIVS";
        r = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        break;
      case OP_CREDS: {
        /* args: uid, gid, has_caps, bounding, effective, permitted, inheritable, ambient, groups... */
        uid_t uid = (uid_t)I(s, 0);
        gid_t gid = (gid_t)I(s, 1);
        int has_caps = (int)I(s, 2);
        uint64_t bnd = (uint64_t)I(s, 3), eff = (uint64_t)I(s, 4), perm = (uint64_t)I(s, 5);
        uint64_t inh = (uint64_t)I(s, 6), amb = (uint64_t)I(s, 7);
        if (has_caps) {
          int last = last_cap();
          for (int c = 0; c <= last; c++) {
            if (bnd & (1ULL << c)) continue;
            if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) die((int)i, "prctl PR_CAPBSET_DROP", errno);
          }
        }
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) die((int)i, "prctl PR_SET_KEEPCAPS", errno);
        uint32_t ng = s->nargs > 8 ? s->nargs - 8 : 0;
        gid_t groups[ng ? ng : 1];
        for (uint32_t g = 0; g < ng; g++) groups[g] = (gid_t)I(s, 8 + g);
        if (setgroups(ng, groups) < 0) die((int)i, "setgroups", errno);
        if (syscall(SYS_setresgid, gid, gid, gid) < 0) die((int)i, "setresgid", errno);
        if (syscall(SYS_setresuid, uid, uid, uid) < 0) die((int)i, "setresuid", errno);
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) die((int)i, "prctl PR_SET_KEEPCAPS", errno);
        if (has_caps) {
          if (set_caps(eff, perm, inh) < 0) die((int)i, "capset", errno);
          if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
            die((int)i, "prctl PR_CAP_AMBIENT_CLEAR_ALL", errno);
          for (int c = 0; c < 64; c++)
            if ((amb & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
              die((int)i, "prctl PR_CAP_AMBIENT_RAISE", errno);
        }
        continue;
      }
      case OP_CHDIR:
        what = "chdir";
        r = chdir(Sx(s, 0));
        break;
      case OP_UMASK:
        umask((mode_t)I(s, 0));
        continue;
      case OP_WRITE: {
        what = "write";
        int fd = open(Sx(s, 0), O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) {
          what = "open";
          r = -1;
          break;
        }
        const char *v = Sx(s, 1);
        ssize_t k = write(fd, v, strlen(v));
        int e = errno;
        close(fd);
        if (k < 0) {
          errno = e;
          r = -1;
        }
        break;
      }
      case OP_SETSID:
        what = "setsid";
        r = setsid() < 0 ? -1 : 0;
        break;
      case OP_FIFO_OPEN:
        what = "open";
        fifo_fd = open(Sx(s, 0), O_PATH | O_CLOEXEC);
        r = fifo_fd < 0 ? -1 : 0;
        break;
      case OP_FIFO_WAIT: {
        /* blocks until `start` opens the fifo for reading */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fifo_fd);
        what = "open exec fifo";
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
          r = -1;
          break;
        }
        what = "write exec fifo";
        r = write(fd, "0", 1) == 1 ? 0 : -1;
        close(fd);
        close(fifo_fd);
        break;
      }
      case OP_CLOSE_FDS: {
        what = "close_range";
        unsigned first = (unsigned)I(s, 0);
        r = (int)syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
        if (r < 0 && (errno == ENOSYS || errno == EINVAL)) {
          for (int fd = (int)first; fd < 1024; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
          r = 0;
        }
        break;
      }
      case OP_PTY:
        if (I(s, 3) == 0) {
          /* first half, before pivot_root: connect to the host's console socket */
          what = "connect console socket";
          struct sockaddr_un sa = {.sun_family = AF_UNIX};
          strncpy(sa.sun_path, S(s, 0), sizeof sa.sun_path - 1);
          console_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
          r = console_fd < 0 ? -1 : connect(console_fd, (struct sockaddr *)&sa, sizeof sa);
          break;
        }
        step_pty(s, (int)i);
        continue;
      case OP_LOOKUP: {
        /* args: name, PATH value. Resolve before waiting so a missing binary fails at create time. */
        const char *name = Sx(s, 0);
        what = "exec";
        if (strchr(name, '/')) {
          snprintf(resolved, sizeof resolved, "%s", name);
          r = access(resolved, X_OK);
          break;
        }
        const char *pathv = S(s, 1) ? S(s, 1) : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        int found = 0, last_err = ENOENT;
        const char *p = pathv;
        while (*p) {
          const char *e = strchr(p, ':');
          size_t len = e ? (size_t)(e - p) : strlen(p);
          snprintf(resolved, sizeof resolved, "%.*s/%s", (int)len, len ? p : ".", name);
          struct stat st;
          if (stat(resolved, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(resolved, X_OK) == 0) {
              found = 1;
              break;
            }
            last_err = errno;
          }
          if (!e) break;
          p = e + 1;
        }
        if (!found) {
          errno = last_err;
          r = -1;
        }
        break;
      }
      case OP_EXEC: {
        /* args: path ("" = the LOOKUP result), argc, argv..., env... */
        const char *path = S(s, 0) ? S(s, 0) : resolved;
        uint32_t argc = (uint32_t)I(s, 1);
        if (argc + 2 > s->nargs) die((int)i, "exec: bad plan", EINVAL);
        uint32_t envc = s->nargs - 2 - argc;
        char **argv = calloc(argc + 1, sizeof *argv);
        char **envp = calloc(envc + 1, sizeof *envp);
        if (!argv || !envp) die((int)i, "exec", ENOMEM);
        for (uint32_t a = 0; a < argc; a++) argv[a] = s->args[2 + a].s;
        for (uint32_t a = 0; a < envc; a++) envp[a] = s->args[2 + argc + a].s;
        exec_env = envp;
        signal(SIGPIPE, SIG_DFL);
        execve(path, argv, exec_env);
        die((int)i, "exec", errno);
        break;
      }
      default:
        die((int)i, "unknown step", EINVAL);
    }
    if (r < 0) {
      if (ig && errno == ENOENT) continue;
      die((int)i, what, errno);
    }
  }
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
  int plan_fd = atoi(pf);
  fcntl(sync_fd, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  uint32_t n;
  struct step *steps = read_plan(plan_fd, &n);
  close(plan_fd);
  unsetenv("BERTH_PLAN_FD");
  unsetenv("BERTH_SYNC_FD");
  run_steps(steps, n, 0);
  return 0;
}

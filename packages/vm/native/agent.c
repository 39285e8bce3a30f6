/*
 * berth-agent: PID 1 of a berth microVM.
 *
 * It is the guest half of @berth/vm and holds no policy: the host writes the
 * initramfs it boots from (this agent, the static berth launcher, the kernel
 * modules in the order berth chose, /config and /plan). The agent
 *   1. mounts devtmpfs, proc and sysfs, loads /modules/ in name order,
 *   2. moves itself onto a tmpfs root (pivot_root refuses the initramfs),
 *      and, when the host gave the VM a NIC (net.* in /config), sets lo up and
 *      gives the interface with that MAC its address and a default route,
 *   3. mounts the container's rootfs, shared by the host over virtio-9p, at the
 *      host's own path, so the host's plan runs here unchanged,
 *   4. runs the berth launcher on /plan with the container's stdio on three
 *      virtio-serial ports, answers its sync points, and reports on a fourth
 *      port ("status": berth-vmm on the host parses it, bounded) one line per event:
 *        created PID | started | error STEP ERRNO SYSCALL | exit CODE
 *   5. takes commands on the "ctl" port (a socket on the host), one line each:
 *        start | kill SIG | killall SIG | exec LEN (followed by LEN plan bytes)
 *      and answers each with "ok" or "err ERRNO",
 *   6. powers the VM off when the container's process has exited.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_PID 1
#define MSG_SYNC 2
#define MSG_ERROR 3
#define MSG_READY 4
#define SYNC_READY_TO_EXEC 2

struct msg {
  uint32_t kind;
  int32_t step;
  int32_t err;
  int32_t value;
  char what[48];
};

static int status_fd = -1, ctl_fd = -1;

static void logf_(const char *fmt, const char *a, int e) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "berth-agent: ");
  n += snprintf(buf + n, sizeof buf - (size_t)n, fmt, a, e ? strerror(e) : "");
  n += snprintf(buf + n, sizeof buf - (size_t)n, "\n");
  if (write(2, buf, (size_t)n) < 0) { /* nothing to do */ }
}

static void power_off(void) {
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause();
}

static void fatal(const char *what, const char *arg, int e) {
  char line[256];
  logf_(what, arg, e);
  (void)what;
  int n = snprintf(line, sizeof line, "fail %d %s\n", e, arg);
  if (status_fd >= 0 && write(status_fd, line, (size_t)n) < 0) { /* nothing to do */ }
  power_off();
}

static void status(const char *fmt, long a, long b, const char *s) {
  char line[256];
  int n = snprintf(line, sizeof line, fmt, a, b, s ? s : "");
  if (status_fd >= 0) {
    ssize_t w;
    do w = write(status_fd, line, (size_t)n); while (w < 0 && errno == EINTR);
  }
}

static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static char *read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) < 0) return close(fd), NULL;
  char *buf = malloc((size_t)st.st_size + 1);
  size_t off = 0;
  while (buf && off < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += (size_t)n;
  }
  close(fd);
  if (!buf) return NULL;
  buf[off] = 0;
  *len = off;
  return buf;
}

static int mkdir_p(const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) return errno = EINVAL, -1;
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
  return 0;
}

/* /config: one "key=value" per line, written by the host. */
static char cfg_rootfs[4096], cfg_tag[64] = "rootfs", cfg_opts[512] = "", cfg_cgroup[8] = "";
/* net.mac=MAC, net.address=A.B.C.D/PREFIX, net.gateway=A.B.C.D: the NIC on the host's bridge */
static char cfg_mac[32] = "", cfg_addr[32] = "", cfg_gw[32] = "";
static int cfg_ro = 0, cfg_autostart = 0;
/* file=INDEX:PATH (a copy of a host file the plan binds, content in /files/INDEX); share=TAG:RO:PATH (a 9p share) */
#define MAX_EXTRA 32
static char *cfg_files[MAX_EXTRA], *cfg_shares[MAX_EXTRA];
static int n_files = 0, n_shares = 0;

static void read_config(void) {
  size_t len;
  char *c = read_file("/config", &len);
  if (!c) fatal("read %s: %s", "/config", errno);
  for (char *line = strtok(c, "\n"); line; line = strtok(NULL, "\n")) {
    char *eq = strchr(line, '=');
    if (!eq) continue;
    *eq = 0;
    const char *v = eq + 1;
    if (!strcmp(line, "rootfs")) snprintf(cfg_rootfs, sizeof cfg_rootfs, "%s", v);
    else if (!strcmp(line, "tag")) snprintf(cfg_tag, sizeof cfg_tag, "%s", v);
    else if (!strcmp(line, "readonly")) cfg_ro = atoi(v);
    else if (!strcmp(line, "autostart")) cfg_autostart = atoi(v);
    else if (!strcmp(line, "options")) snprintf(cfg_opts, sizeof cfg_opts, "%s", v);
    else if (!strcmp(line, "cgroup")) snprintf(cfg_cgroup, sizeof cfg_cgroup, "%s", v);
    else if (!strcmp(line, "net.mac")) snprintf(cfg_mac, sizeof cfg_mac, "%s", v);
    else if (!strcmp(line, "net.address")) snprintf(cfg_addr, sizeof cfg_addr, "%s", v);
    else if (!strcmp(line, "net.gateway")) snprintf(cfg_gw, sizeof cfg_gw, "%s", v);
    else if (!strcmp(line, "file") && n_files < MAX_EXTRA) cfg_files[n_files++] = strdup(v);
    else if (!strcmp(line, "share") && n_shares < MAX_EXTRA) cfg_shares[n_shares++] = strdup(v);
  }
  free(c);
  if (!cfg_rootfs[0] || cfg_rootfs[0] != '/') fatal("config: %s%s", "rootfs is not an absolute path", 0);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static void load_modules(void) {
  struct dirent **list;
  int n = scandir("/modules", &list, NULL, by_name);
  if (n < 0) return;
  for (int i = 0; i < n; i++) {
    if (list[i]->d_name[0] == '.') continue;
    char path[512];
    snprintf(path, sizeof path, "/modules/%s", list[i]->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fatal("open module %s: %s", path, errno);
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) fatal("load module %s: %s", path, errno);
    close(fd);
    unlink(path); /* the initramfs is memory: give it back */
  }
}

static int copy_file(const char *from, const char *to, mode_t mode) {
  size_t len;
  char *data = read_file(from, &len);
  if (!data) return -1;
  int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return free(data), -1;
  int r = write_all(fd, data, len);
  close(fd);
  free(data);
  unlink(from);
  return r;
}

/* Moves / from the initramfs onto a tmpfs, as switch_root does: pivot_root works from there. */
static void switch_root(void) {
  if (mkdir("/newroot", 0755) < 0 && errno != EEXIST) fatal("mkdir %s: %s", "/newroot", errno);
  if (mount("tmpfs", "/newroot", "tmpfs", 0, "mode=0755") < 0) fatal("mount %s: %s", "tmpfs", errno);
  const char *dirs[] = {"/newroot/dev", "/newroot/proc", "/newroot/sys", "/newroot/tmp", "/newroot/.berth"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
    if (mkdir(dirs[i], 0755) < 0 && errno != EEXIST) fatal("mkdir %s: %s", dirs[i], errno);
  if (copy_file("/berth-launcher", "/newroot/.berth/launcher", 0700) < 0) fatal("copy %s: %s", "launcher", errno);
  if (copy_file("/plan", "/newroot/.berth/plan", 0600) < 0) fatal("copy %s: %s", "plan", errno);
  /* the host files the plan binds, at their host paths */
  for (int i = 0; i < n_files; i++) {
    char *colon = strchr(cfg_files[i], ':');
    if (!colon || colon[1] != '/') fatal("config: bad file entry %s%s", cfg_files[i], 0);
    *colon = 0;
    char from[64], to[4200];
    snprintf(from, sizeof from, "/files/%s", cfg_files[i]);
    snprintf(to, sizeof to, "/newroot%s", colon + 1);
    char *slash = strrchr(to, '/');
    *slash = 0;
    if (mkdir_p(to) < 0) fatal("mkdir %s: %s", to, errno);
    *slash = '/';
    if (copy_file(from, to, 0644) < 0) fatal("copy %s: %s", to, errno);
  }
  const char *moves[][2] = {{"/dev", "/newroot/dev"}, {"/proc", "/newroot/proc"}, {"/sys", "/newroot/sys"}};
  for (size_t i = 0; i < 3; i++)
    if (mount(moves[i][0], moves[i][1], NULL, MS_MOVE, NULL) < 0) fatal("move %s: %s", moves[i][0], errno);
  if (chdir("/newroot") < 0) fatal("chdir %s: %s", "/newroot", errno);
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) fatal("move %s: %s", "/newroot", errno);
  if (chroot(".") < 0) fatal("chroot %s: %s", ".", errno);
  if (chdir("/") < 0) fatal("chdir %s: %s", "/", errno);
}

/* The virtio-serial port named `name` (QEMU's virtserialport name=…), waiting for udev-less devtmpfs. */
static int open_port(const char *name, int flags) {
  for (int tries = 0; tries < 2000; tries++) {
    DIR *d = opendir("/sys/class/virtio-ports");
    if (d) {
      struct dirent *e;
      while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[300], n[64] = {0};
        snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t k = read(fd, n, sizeof n - 1);
        close(fd);
        if (k > 0 && n[k - 1] == '\n') n[k - 1] = 0;
        if (strcmp(n, name) != 0) continue;
        snprintf(p, sizeof p, "/dev/%s", e->d_name);
        int port = open(p, flags | O_CLOEXEC);
        if (port >= 0) {
          closedir(d);
          return port;
        }
      }
      closedir(d);
    }
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  fatal("virtio-serial port %s: %s", name, ENOENT);
  return -1;
}

/* ---- the NIC ---- */

static void if_up(int sock, const char *name) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) fatal("SIOCGIFFLAGS %s: %s", name, errno);
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) fatal("SIOCSIFFLAGS %s: %s", name, errno);
}

static void set_in(struct sockaddr *sa, in_addr_t a) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = a;
  memcpy(sa, &sin, sizeof sin);
}

/*
 * The interface whose MAC the host chose (virtio_net names it; no udev here),
 * given the address and a default route via the bridge's gateway; lo up. It
 * stays in the guest's own network namespace, where the container runs: the
 * VM is the container's network boundary.
 */
static void setup_net(void) {
  if (!cfg_mac[0]) return;
  char ifname[IFNAMSIZ] = "";
  for (int tries = 0; tries < 2000 && !ifname[0]; tries++) {
    DIR *d = opendir("/sys/class/net");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[300], mac[64] = {0};
      snprintf(p, sizeof p, "/sys/class/net/%s/address", e->d_name);
      int fd = open(p, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t k = read(fd, mac, sizeof mac - 1);
      close(fd);
      if (k > 0 && mac[k - 1] == '\n') mac[k - 1] = 0;
      if (!strcasecmp(mac, cfg_mac)) snprintf(ifname, sizeof ifname, "%.15s", e->d_name);
    }
    if (d) closedir(d);
    if (!ifname[0]) {
      struct timespec ts = {0, 2 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  if (!ifname[0]) fatal("no network interface with MAC %s%s", cfg_mac, 0);
  char addr[32];
  snprintf(addr, sizeof addr, "%s", cfg_addr);
  char *slash = strchr(addr, '/');
  int prefix = slash ? atoi(slash + 1) : 32;
  if (slash) *slash = 0;
  struct in_addr a, gw;
  if (inet_pton(AF_INET, addr, &a) != 1 || prefix < 0 || prefix > 32) fatal("config: bad net.address %s%s", cfg_addr, 0);
  if (inet_pton(AF_INET, cfg_gw, &gw) != 1) fatal("config: bad net.gateway %s%s", cfg_gw, 0);
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) fatal("socket %s: %s", "AF_INET", errno);
  if_up(sock, "lo");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  set_in(&ifr.ifr_addr, a.s_addr);
  if (ioctl(sock, SIOCSIFADDR, &ifr) < 0) fatal("SIOCSIFADDR %s: %s", ifname, errno);
  set_in(&ifr.ifr_netmask, prefix ? htonl(0xffffffffu << (32 - prefix)) : 0);
  if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0) fatal("SIOCSIFNETMASK %s: %s", ifname, errno);
  if_up(sock, ifname);
  struct rtentry rt;
  memset(&rt, 0, sizeof rt);
  set_in(&rt.rt_dst, INADDR_ANY);
  set_in(&rt.rt_genmask, INADDR_ANY);
  set_in(&rt.rt_gateway, gw.s_addr);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  rt.rt_dev = ifname;
  if (ioctl(sock, SIOCADDRT, &rt) < 0) fatal("SIOCADDRT default via %s: %s", cfg_gw, errno);
  close(sock);
}

/* ---- the container's launcher ---- */

struct proc {
  pid_t launcher;
  pid_t pid;     /* the container's process, as the launcher reported it */
  int sync;      /* our end of the launcher's sync socket */
  char buf[sizeof(struct msg)];
  size_t have;
  int created, started, main;
};

static struct proc procs[16];

static pid_t spawn_launcher(const char *plan, size_t plan_len, int in, int out, int err, int *sync_out) {
  int sv[2], pp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -1;
  if (pipe2(pp, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fds[5] = {in, out, err, pp[0], sv[1]};
    /* move every source above 10 first so dup2 cannot clobber one */
    for (int i = 0; i < 5; i++) fds[i] = fcntl(fds[i], F_DUPFD, 10);
    for (int i = 0; i < 5; i++) dup2(fds[i], i);
    char *argv[] = {"berth-launcher", NULL};
    char *envp[] = {"BERTH_PLAN_FD=3", "BERTH_SYNC_FD=4", NULL};
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve("/.berth/launcher", argv, envp);
    _exit(127);
  }
  close(pp[0]);
  close(sv[1]);
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  /* the launcher reads the whole plan before it does anything */
  write_all(pp[1], plan, plan_len);
  close(pp[1]);
  *sync_out = sv[0];
  return pid;
}

static struct proc *add_proc(pid_t launcher, int sync, int main) {
  for (size_t i = 0; i < sizeof procs / sizeof *procs; i++) {
    if (procs[i].launcher) continue;
    memset(&procs[i], 0, sizeof procs[i]);
    procs[i].launcher = launcher;
    procs[i].sync = sync;
    procs[i].main = main;
    return &procs[i];
  }
  return NULL;
}

static void on_msg(struct proc *p, const struct msg *m) {
  if (m->kind == MSG_PID) {
    if (!p->pid) p->pid = m->value;
  } else if (m->kind == MSG_SYNC) {
    if (p->main && m->value == SYNC_READY_TO_EXEC) {
      p->created = 1;
      status("created %ld\n", p->pid, 0, NULL);
      if (!cfg_autostart) return; /* held until "start" */
      p->started = 1;
      status("started\n", 0, 0, NULL);
    }
    if (write(p->sync, "g", 1) < 0) { /* the launcher died: SIGCHLD tells */ }
  } else if (m->kind == MSG_ERROR) {
    char what[49];
    memcpy(what, m->what, 48);
    what[48] = 0;
    for (char *c = what; *c; c++)
      if (*c == ' ' || *c == '\n') *c = '_';
    if (p->main) status("error %ld %ld %s\n", m->step, m->err, what);
  }
}

static void on_sync(struct proc *p) {
  ssize_t n = read(p->sync, p->buf + p->have, sizeof p->buf - p->have);
  if (n <= 0) {
    close(p->sync);
    p->sync = -1;
    return;
  }
  p->have += (size_t)n;
  if (p->have == sizeof p->buf) {
    struct msg m;
    memcpy(&m, p->buf, sizeof m);
    p->have = 0;
    on_msg(p, &m);
  }
}

/* ---- the host's commands ---- */

static char ctl_buf[1 << 20];
static size_t ctl_have = 0;
static int ctl_hup = 0;
static int exec_io[3] = {-1, -1, -1};

static void reply(int err) {
  char line[32];
  int n = err ? snprintf(line, sizeof line, "err %d\n", err) : snprintf(line, sizeof line, "ok\n");
  /* the port is non-blocking: a host end QEMU has not yet seen connected (a starved QEMU, e.g.
   * under a CPU quota) is waited for, up to 5 s, rather than the answer dropped */
  const char *p = line;
  size_t left = (size_t)n;
  for (int tries = 0; left && tries < 50;) {
    ssize_t w = write(ctl_fd, p, left);
    if (w > 0) {
      p += w;
      left -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && errno == EAGAIN) {
      struct pollfd out = {.fd = ctl_fd, .events = POLLOUT};
      poll(&out, 1, 100);
      tries++;
    } else {
      return;
    }
  }
}

static struct proc *main_proc(void) {
  for (size_t i = 0; i < sizeof procs / sizeof *procs; i++)
    if (procs[i].launcher && procs[i].main) return &procs[i];
  return NULL;
}

static int on_command(char *line, size_t avail, size_t *consumed) {
  struct proc *m = main_proc();
  if (!strcmp(line, "start")) {
    if (!m || !m->created || m->started) return reply(EINVAL), 0;
    m->started = 1;
    if (write(m->sync, "g", 1) != 1) return reply(errno), 0;
    status("started\n", 0, 0, NULL);
    return reply(0), 0;
  }
  if (!strncmp(line, "kill ", 5) || !strncmp(line, "killall ", 8)) {
    int all = line[4] != ' ';
    int sig = atoi(line + (all ? 8 : 5));
    if (!m || m->pid <= 0) return reply(ESRCH), 0;
    /* kill(-1) from PID 1 reaches every process but this one */
    int r = all ? kill(-1, sig) : kill(m->pid, sig);
    return reply(r < 0 ? errno : 0), 0;
  }
  if (!strncmp(line, "exec ", 5)) {
    /* "exec LEN" then LEN plan bytes; its stdio is the exec ports */
    size_t len = strtoul(line + 5, NULL, 10);
    if (len > sizeof ctl_buf - 64) return reply(E2BIG), 0;
    if (avail < len) return 1; /* wait for the rest */
    char *plan = line + strlen(line) + 1;
    int sync;
    pid_t pid = spawn_launcher(plan, len, exec_io[0], exec_io[1], exec_io[2], &sync);
    *consumed = len;
    if (pid < 0 || !add_proc(pid, sync, 0)) return reply(pid < 0 ? errno : EAGAIN), 0;
    return reply(0), 0;
  }
  return reply(EINVAL), 0;
}

static void on_ctl(void) {
  ssize_t n = read(ctl_fd, ctl_buf + ctl_have, sizeof ctl_buf - ctl_have);
  if (n <= 0) {
    /* the host is not connected (virtio-serial says so with POLLHUP): look again soon */
    if (n == 0 || errno != EAGAIN) ctl_hup = 1;
    return;
  }
  ctl_have += (size_t)n;
  for (;;) {
    char *nl = memchr(ctl_buf, '\n', ctl_have);
    if (!nl) break;
    *nl = 0;
    size_t head = (size_t)(nl - ctl_buf) + 1, extra = 0;
    if (on_command(ctl_buf, ctl_have - head, &extra)) {
      *nl = '\n';
      break;
    }
    memmove(ctl_buf, ctl_buf + head + extra, ctl_have - head - extra);
    ctl_have -= head + extra;
  }
  if (ctl_have == sizeof ctl_buf) ctl_have = 0; /* garbage: drop it */
}

static void reap(void) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < sizeof procs / sizeof *procs; i++) {
      struct proc *p = &procs[i];
      if (p->launcher != pid) continue;
      int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      if (p->sync >= 0) {
        while (p->sync >= 0) on_sync(p); /* its last words (an error) come first */
      }
      p->launcher = 0;
      if (!p->main) status("exec-exit %ld\n", code, 0, NULL);
      if (p->main) {
        status("exit %ld\n", code, 0, NULL);
        power_off();
      }
    }
  }
}

int main(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0755);
  mkdir("/sys", 0755);
  if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY) return 1;
  int con = open("/dev/console", O_RDWR | O_NOCTTY);
  if (con < 0) con = open("/dev/null", O_RDWR);
  while (con >= 0 && con < 3) con = dup(con);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) fatal("mount %s: %s", "/proc", errno);
  if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) fatal("mount %s: %s", "/sys", errno);
  read_config();
  load_modules();
  switch_root();
  status_fd = open_port("berth.status", O_WRONLY);
  ctl_fd = open_port("berth.ctl", O_RDWR | O_NONBLOCK);
  int in = open_port("berth.stdin", O_RDONLY);
  int out = open_port("berth.stdout", O_WRONLY);
  int err = open_port("berth.stderr", O_WRONLY);
  exec_io[0] = open_port("berth.exec-stdin", O_RDONLY);
  exec_io[1] = open_port("berth.exec-stdout", O_WRONLY);
  exec_io[2] = open_port("berth.exec-stderr", O_WRONLY);
  setup_net();
  if (cfg_cgroup[0]) {
    mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  }
  if (mkdir_p(cfg_rootfs) < 0) fatal("mkdir %s: %s", cfg_rootfs, errno);
  char opts[700];
  snprintf(opts, sizeof opts, "trans=virtio,version=9p2000.L%s%s", cfg_opts[0] ? "," : "", cfg_opts);
  if (mount(cfg_tag, cfg_rootfs, "9p", cfg_ro ? MS_RDONLY : 0, opts) < 0) fatal("mount 9p on %s: %s", cfg_rootfs, errno);
  for (int i = 0; i < n_shares; i++) {
    /* TAG:RO:PATH */
    char *tag = cfg_shares[i], *ro = strchr(tag, ':'), *path = ro ? strchr(ro + 1, ':') : NULL;
    if (!ro || !path) fatal("config: bad share entry %s%s", tag, 0);
    *ro++ = 0;
    *path++ = 0;
    if (mkdir_p(path) < 0) fatal("mkdir %s: %s", path, errno);
    char o[700];
    snprintf(o, sizeof o, "trans=virtio,version=9p2000.L%s%s", cfg_opts[0] ? "," : "", cfg_opts);
    if (mount(tag, path, "9p", atoi(ro) ? MS_RDONLY : 0, o) < 0) fatal("mount 9p on %s: %s", path, errno);
  }

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  size_t plan_len;
  char *plan = read_file("/.berth/plan", &plan_len);
  if (!plan) fatal("read %s: %s", "plan", errno);
  int sync;
  pid_t launcher = spawn_launcher(plan, plan_len, in, out, err, &sync);
  if (launcher < 0) fatal("run %s: %s", "launcher", errno);
  free(plan);
  close(in);
  close(out);
  close(err);
  add_proc(launcher, sync, 1);

  for (;;) {
    struct pollfd p[2 + 16];
    int n = 0;
    p[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    p[n++] = (struct pollfd){.fd = ctl_hup ? -1 : ctl_fd, .events = POLLIN};
    struct proc *who[16];
    for (size_t i = 0; i < sizeof procs / sizeof *procs; i++) {
      if (!procs[i].launcher || procs[i].sync < 0) continue;
      who[n - 2] = &procs[i];
      p[n++] = (struct pollfd){.fd = procs[i].sync, .events = POLLIN};
    }
    int hup = ctl_hup;
    ctl_hup = 0;
    if (poll(p, (nfds_t)n, hup ? 20 : -1) < 0) continue;
    for (int i = 2; i < n; i++)
      if (p[i].revents) on_sync(who[i - 2]);
    if (p[1].revents || hup) on_ctl();
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) { /* drain */ }
      reap();
    }
  }
}

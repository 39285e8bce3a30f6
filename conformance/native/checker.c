// The conformance checker: a small static program that runs inside the
// container (and, for hooks, on the host) and prints, as one JSON object on
// stdout, what a process sees: ids, groups, umask, cwd, env, argv, hostname,
// capability sets, no_new_privs, seccomp mode, rlimits, namespace inodes,
// mountinfo, cgroup membership, oom_score_adj, scheduling, I/O priority,
// clocks, personality, and whatever files the test asks about. It decides
// nothing: the tests compare its report with the config.
//
//   checker report [--file PATH] [--write PATH] [--open PATH] [--openw PATH] [--mkdir PATH] [--sethostname NAME]...
//   checker wait            print {"ready":1}, then exit after the first of
//                           SIGUSR1/SIGTERM/SIGHUP/SIGINT with {"signal":N}
//   checker exit N          exit with status N
//   checker hook FILE NAME [fail]  append one JSON line (NAME, stdin, namespaces, pid) to FILE
//
// Built with gcc -static so it runs in an empty rootfs and on the host alike.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static FILE *out;
static int first;

static void str(const char *s, size_t n) {
  fputc('"', out);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c == '\t')
      fputs("\\t", out);
    else if (c < 0x20 || c >= 0x7f)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}
static void cstr(const char *s) { str(s, strlen(s)); }
static void key(const char *k) {
  if (!first) fputc(',', out);
  first = 0;
  cstr(k);
  fputc(':', out);
}
static void open_obj(void) {
  fputc('{', out);
  first = 1;
}
static void close_obj(void) {
  fputc('}', out);
  first = 0;
}
static void kv_str(const char *k, const char *v) {
  key(k);
  cstr(v);
}
static void kv_int(const char *k, long long v) {
  key(k);
  fprintf(out, "%lld", v);
}

/* Reads a whole small file; returns the length or -errno. */
static ssize_t slurp(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, size - 1 - n);
    if (r < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n >= size - 1) break;
  }
  close(fd);
  buf[n] = 0;
  return (ssize_t)n;
}

static char big[1 << 20];

static void kv_file(const char *k, const char *path) {
  ssize_t n = slurp(path, big, sizeof big);
  key(k);
  if (n < 0)
    fputs("null", out);
  else
    str(big, (size_t)n);
}

/* One line of /proc/self/status, e.g. "CapEff". */
static void status_field(const char *k, const char *field) {
  static char st[65536];
  ssize_t n = slurp("/proc/self/status", st, sizeof st);
  key(k);
  if (n < 0) {
    fputs("null", out);
    return;
  }
  size_t fl = strlen(field);
  for (char *line = st; line && *line;) {
    char *nl = strchr(line, '\n');
    if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
      char *v = line + fl + 1;
      while (*v == ' ' || *v == '\t') v++;
      str(v, nl ? (size_t)(nl - v) : strlen(v));
      return;
    }
    line = nl ? nl + 1 : NULL;
  }
  fputs("null", out);
}

static const struct {
  const char *name;
  int res;
} RLIMITS[] = {
    {"RLIMIT_AS", RLIMIT_AS},         {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},       {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},   {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},   {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

static const char *NS[] = {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"};

static void namespaces(void) {
  key("ns");
  open_obj();
  for (size_t i = 0; i < sizeof NS / sizeof *NS; i++) {
    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/self/ns/%s", NS[i]);
    ssize_t n = readlink(path, link, sizeof link - 1);
    key(NS[i]);
    if (n < 0)
      fputs("null", out);
    else
      str(link, (size_t)n);
  }
  close_obj();
}

static void file_report(const char *path) {
  struct stat st;
  key(path);
  open_obj();
  if (lstat(path, &st) < 0) {
    kv_int("errno", errno);
    close_obj();
    return;
  }
  const char *type = S_ISREG(st.st_mode)    ? "file"
                     : S_ISDIR(st.st_mode)  ? "dir"
                     : S_ISLNK(st.st_mode)  ? "symlink"
                     : S_ISCHR(st.st_mode)  ? "char"
                     : S_ISBLK(st.st_mode)  ? "block"
                     : S_ISFIFO(st.st_mode) ? "fifo"
                     : S_ISSOCK(st.st_mode) ? "socket"
                                            : "other";
  kv_str("type", type);
  kv_int("mode", st.st_mode & 07777);
  kv_int("uid", st.st_uid);
  kv_int("gid", st.st_gid);
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    kv_int("major", major(st.st_rdev));
    kv_int("minor", minor(st.st_rdev));
  }
  if (S_ISLNK(st.st_mode)) {
    char link[4096];
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n >= 0) {
      key("link");
      str(link, (size_t)n);
    }
  }
  struct statvfs vfs;
  if (statvfs(path, &vfs) == 0) {
    key("readonly");
    fputs(vfs.f_flag & ST_RDONLY ? "true" : "false", out);
  }
  if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      kv_int("readErrno", errno);
    } else {
      char buf[4096];
      ssize_t n = (S_ISREG(st.st_mode) || major(st.st_rdev) == 1) ? read(fd, buf, sizeof buf) : 0;
      if (n < 0)
        kv_int("readErrno", errno);
      else {
        key("content");
        str(buf, (size_t)n);
      }
      close(fd);
    }
  } else if (S_ISDIR(st.st_mode)) {
    /* number of entries besides . and .. */
    int count = 0;
    {
      int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd >= 0) {
        char dbuf[8192];
        for (;;) {
          long n = syscall(SYS_getdents64, fd, dbuf, sizeof dbuf);
          if (n <= 0) break;
          for (long off = 0; off < n;) {
            unsigned short reclen = *(unsigned short *)(dbuf + off + 16);
            const char *name = dbuf + off + 19;
            if (strcmp(name, ".") && strcmp(name, "..")) count++;
            off += reclen;
          }
        }
        close(fd);
        kv_int("entries", count);
      } else {
        kv_int("readErrno", errno);
      }
    }
  }
  close_obj();
}

static int report(int argc, char **argv) {
  struct utsname u;
  uname(&u);
  open_obj();
  kv_int("pid", getpid());
  kv_int("ppid", getppid());
  kv_int("uid", getuid());
  kv_int("euid", geteuid());
  kv_int("gid", getgid());
  kv_int("egid", getegid());
  gid_t groups[256];
  int ng = getgroups(256, groups);
  key("groups");
  fputc('[', out);
  for (int i = 0; i < ng; i++) fprintf(out, "%s%u", i ? "," : "", groups[i]);
  fputc(']', out);
  mode_t mask = umask(0);
  umask(mask);
  kv_int("umask", mask);
  char cwd[4096];
  kv_str("cwd", getcwd(cwd, sizeof cwd) ? cwd : "");
  key("env");
  fputc('[', out);
  for (char **e = environ; *e; e++) {
    if (e != environ) fputc(',', out);
    cstr(*e);
  }
  fputc(']', out);
  key("argv");
  fputc('[', out);
  for (int i = 0; i < argc; i++) {
    if (i) fputc(',', out);
    cstr(argv[i]);
  }
  fputc(']', out);
  kv_str("hostname", u.nodename);
  kv_str("domainname", u.domainname);
  kv_str("machine", u.machine);
  kv_int("personality", personality(0xffffffff));
  status_field("capInh", "CapInh");
  status_field("capPrm", "CapPrm");
  status_field("capEff", "CapEff");
  status_field("capBnd", "CapBnd");
  status_field("capAmb", "CapAmb");
  status_field("noNewPrivs", "NoNewPrivs");
  status_field("seccomp", "Seccomp");
  kv_int("prNoNewPrivs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
  key("rlimits");
  open_obj();
  for (size_t i = 0; i < sizeof RLIMITS / sizeof *RLIMITS; i++) {
    struct rlimit rl;
    key(RLIMITS[i].name);
    if (getrlimit(RLIMITS[i].res, &rl) < 0) {
      fputs("null", out);
      continue;
    }
    fprintf(out, "[\"%llu\",\"%llu\"]", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
  }
  close_obj();
  namespaces();
  kv_file("mountinfo", "/proc/self/mountinfo");
  kv_file("cgroup", "/proc/self/cgroup");
  kv_file("oomScoreAdj", "/proc/self/oom_score_adj");
  kv_file("uidMap", "/proc/self/uid_map");
  kv_file("gidMap", "/proc/self/gid_map");
  kv_int("schedPolicy", sched_getscheduler(0));
  errno = 0;
  kv_int("nice", getpriority(PRIO_PROCESS, 0));
  kv_int("ioprio", syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0));
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  kv_int("monotonic", ts.tv_sec);
  clock_gettime(CLOCK_BOOTTIME, &ts);
  kv_int("boottime", ts.tv_sec);
  /* open fds besides 0, 1, 2 */
  key("fds");
  fputc('[', out);
  {
    int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int any = 0;
    if (fd >= 0) {
      char dbuf[8192];
      for (;;) {
        long n = syscall(SYS_getdents64, fd, dbuf, sizeof dbuf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
          unsigned short reclen = *(unsigned short *)(dbuf + off + 16);
          const char *name = dbuf + off + 19;
          if (name[0] != '.' && atoi(name) > 2 && atoi(name) != fd) {
            fprintf(out, "%s%s", any ? "," : "", name);
            any = 1;
          }
          off += reclen;
        }
      }
      close(fd);
    }
  }
  fputc(']', out);

  key("files");
  open_obj();
  for (int i = 2; i + 1 < argc; i += 2)
    if (!strcmp(argv[i], "--file")) file_report(argv[i + 1]);
  close_obj();
  /* each action: 0 when it worked, else errno */
  key("actions");
  open_obj();
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *a = argv[i], *p = argv[i + 1];
    int r = 0;
    if (!strcmp(a, "--write")) {
      int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0)
        r = errno;
      else {
        if (write(fd, "x", 1) < 0) r = errno;
        close(fd);
      }
    } else if (!strcmp(a, "--open")) {
      int fd = open(p, O_RDWR | O_CLOEXEC);
      if (fd < 0)
        r = errno;
      else
        close(fd);
    } else if (!strcmp(a, "--openw")) {
      int fd = open(p, O_WRONLY | O_CLOEXEC);
      if (fd < 0)
        r = errno;
      else
        close(fd);
    } else if (!strcmp(a, "--mkdir")) {
      r = mkdir(p, 0755) < 0 ? errno : 0;
    } else if (!strcmp(a, "--sethostname")) {
      r = sethostname(p, strlen(p)) < 0 ? errno : 0;
    } else {
      continue;
    }
    char k[4200];
    snprintf(k, sizeof k, "%s %s", a + 2, p);
    kv_int(k, r);
  }
  close_obj();
  close_obj();
  fputc('\n', out);
  fflush(out);
  return 0;
}

static volatile sig_atomic_t got;
static void on_signal(int sig) { got = sig; }

static int wait_for_signal(void) {
  int sigs[] = {SIGUSR1, SIGUSR2, SIGTERM, SIGHUP, SIGINT};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(sigs[i], &sa, NULL);
  }
  fputs("{\"ready\":1}\n", out);
  fflush(out);
  while (!got) pause();
  fprintf(out, "{\"signal\":%d}\n", (int)got);
  fflush(out);
  return 0;
}

static int hook(int argc, char **argv) {
  if (argc < 3) return 2;
  static char in[65536];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(0, in + n, sizeof in - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  in[n] = 0;
  FILE *f = fopen(argv[2], "a");
  if (!f) return 3;
  out = f;
  open_obj();
  kv_str("hook", argc > 3 ? argv[3] : "");
  kv_int("pid", getpid());
  key("stdin");
  str(in, n);
  namespaces();
  char cwd[4096];
  kv_str("cwd", getcwd(cwd, sizeof cwd) ? cwd : "");
  close_obj();
  fputc('\n', out);
  fclose(f);
  return argc > 4 && !strcmp(argv[4], "fail") ? 1 : 0;
}

int main(int argc, char **argv) {
  out = stdout;
  const char *mode = argc > 1 ? argv[1] : "report";
  if (!strcmp(mode, "report")) return report(argc, argv);
  if (!strcmp(mode, "wait")) return wait_for_signal();
  if (!strcmp(mode, "exit")) return argc > 2 ? atoi(argv[2]) : 0;
  if (!strcmp(mode, "hook")) return hook(argc, argv);
  fprintf(stderr, "checker: unknown mode %s\n", mode);
  return 2;
}

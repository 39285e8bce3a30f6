/*
 * OP_LOOPBACK (52): `lo` set up in the container's new network namespace (runc and crun do
 * so for every new one). OP_HOME (53, args: i uid): HOME for a process whose env has none,
 * from the container's /etc/passwd entry for that uid, else "/", as runc.
 * Included by launcher.c after paths.h; static functions only.
 */
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

enum { OP_LOOPBACK = 52, OP_HOME = 53 };

static char home_env[4096 + 6]; /* "HOME=..." for step_exec, when OP_HOME ran */

static int step_loopback(const char **what) {
  *what = "set up lo";
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  int r = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    r = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int e = errno;
  close(s);
  errno = e;
  return r;
}

/*
 * The file's contents, read through an fd resolved in the container's root (no magic link,
 * nothing outside it: the file is the container's to make a link of) and reopened through
 * the verified procfs. Returns the length read (at most cap - 1, NUL-terminated), or -1.
 */
static ssize_t read_in_root(const char *path, char *buf, size_t cap) {
  int fd = open_in_root(path, 0);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || proc_fd < 0) {
    close(fd);
    return errno = EINVAL, -1;
  }
  char name[32];
  snprintf(name, sizeof name, "self/fd/%d", fd);
  int rfd = openat(proc_fd, name, O_RDONLY | O_CLOEXEC);
  close(fd);
  if (rfd < 0) return -1;
  size_t n = 0;
  while (n < cap - 1) {
    ssize_t k = read(rfd, buf + n, cap - 1 - n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    n += (size_t)k;
  }
  close(rfd);
  buf[n] = 0;
  return (ssize_t)n;
}

static int step_home(struct step *s, const char **what) {
  *what = "read /etc/passwd";
  const char *home = "/";
  static char passwd[1 << 20];
  uid_t uid = (uid_t)I(s, 0); /* the process's uid (OP_CREDS comes later) */
  if (read_in_root("/etc/passwd", passwd, sizeof passwd) >= 0) {
    /* name:password:uid:gid:gecos:home:shell, one a line */
    for (char *line = passwd; line && *line; ) {
      char *next = strchr(line, '\n');
      if (next) *next++ = 0;
      char *f[7] = {0};
      int nf = 0;
      for (char *p = line; nf < 7; nf++) {
        f[nf] = p;
        char *c = strchr(p, ':');
        if (!c) { nf++; break; }
        *c = 0;
        p = c + 1;
      }
      char *end;
      if (nf >= 6 && f[2][0] && strtoul(f[2], &end, 10) == uid && !*end && f[5][0] == '/') {
        home = f[5];
        break;
      }
      line = next;
    }
  }
  snprintf(home_env, sizeof home_env, "HOME=%s", home);
  return 0;
}

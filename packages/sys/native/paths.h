/*
 * Paths inside the container's root, resolved at the moment of use.
 *
 * Every path that comes from a bundle or an image (a mount destination, a
 * device node, a masked or read-only path, the working directory) is resolved
 * relative to a directory fd of the container's root, as if that directory
 * were "/": symlinks are followed but never out of it, ".." stops at it, and
 * magic links (/proc/PID/fd/N, /proc/PID/root, ...) are refused, so nothing the
 * image holds can send an operation to a host path. openat2(RESOLVE_IN_ROOT)
 * does this in the kernel (5.6+); where it is missing, open_in_root walks the
 * path one component at a time with O_NOFOLLOW and resolves symlinks itself.
 *
 * Writes to procfs go through a handle on a verified procfs (fstatfs ==
 * PROC_SUPER_MAGIC, the root inode of its mount) opened before anything of
 * the container's exists, and never cross a mount below it (RESOLVE_NO_XDEV):
 * a file bind-mounted over a procfs file cannot redirect the write.
 *
 * This file is included by launcher.c (one translation unit, built with the
 * system compiler or musl-gcc).
 */
#ifndef BERTH_PATHS_H
#define BERTH_PATHS_H

#include <sys/statfs.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10
#endif
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif
#define PROC_ROOT_INO 1

struct berth_open_how {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};

static int root_fd = -1; /* the container's root: the rootfs before pivot_root, "/" after */
static int proc_fd = -1; /* a verified procfs, opened at start-up from the runtime's own /proc */
static int have_openat2 = 1;
/* tests: force the component walk (set by the plan's test-only step, never by the environment) */
static int force_walk = 0;

static int dup_fd(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 3); }

/* The root that container paths are relative to: "/" unless a rootfs was opened (OP_ROOT). */
static int current_root(void) {
  if (root_fd < 0) root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return root_fd;
}

static void set_root(int fd) {
  if (root_fd >= 0) close(root_fd);
  root_fd = fd;
}

static int openat2_retry(int dirfd, const char *path, uint64_t flags, uint64_t resolve) {
  struct berth_open_how how = {.flags = flags | O_CLOEXEC, .mode = 0, .resolve = resolve};
  int fd;
  /* EAGAIN: a rename raced the lookup (RESOLVE_IN_ROOT is strict about it); look again */
  int tries = 0;
  do fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  while (fd < 0 && (errno == EAGAIN || errno == EINTR) && ++tries < 64);
  return fd;
}

#define WALK_DEPTH 256
#define WALK_LINKS 40

/*
 * The fallback for kernels without openat2: the same semantics as
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, done in user space. Each component
 * is opened O_PATH | O_NOFOLLOW relative to the fd of its verified parent; a
 * symlink's target is read from the link's own fd and walked in its place (an
 * absolute one from the root again); ".." pops back to the fd we came from and
 * never above the root. Only O_PATH results (optionally O_DIRECTORY).
 */
static int walk_in_root(int rootfd, const char *path, int oflags) {
  static char buf[2][8192];
  int cur = 0;
  int stack[WALK_DEPTH];
  int depth = 0, links = 0, fd = -1, err = 0;
  if (strlen(path) >= sizeof buf[0]) return errno = ENAMETOOLONG, -1;
  strcpy(buf[cur], path);
  char *rest = buf[cur];
  stack[0] = dup_fd(rootfd);
  if (stack[0] < 0) return -1;
  for (;;) {
    while (*rest == '/') rest++;
    if (!*rest) break;
    char *end = strchr(rest, '/');
    size_t len = end ? (size_t)(end - rest) : strlen(rest);
    char comp[256];
    if (len >= sizeof comp) {
      err = ENAMETOOLONG;
      goto fail;
    }
    memcpy(comp, rest, len);
    comp[len] = 0;
    rest += len;
    const char *after = rest;
    while (*after == '/') after++;
    int last = *after == 0;
    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0) {
      if (depth > 0) close(stack[depth--]);
      continue;
    }
    fd = openat(stack[depth], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
      err = errno;
      goto fail;
    }
    if (S_ISLNK(st.st_mode) && !(last && (oflags & O_NOFOLLOW))) {
      /* RESOLVE_NO_MAGICLINKS: on procfs only the links at its top (self, thread-self, mounts, ...)
       * are plain symlinks; /proc/PID/{exe,cwd,root,fd/N,ns/X,...} jump to what they name */
      struct statfs sf;
      struct stat pst;
      if (fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC &&
          !(fstat(stack[depth], &pst) == 0 && pst.st_ino == PROC_ROOT_INO)) {
        err = ELOOP;
        goto fail;
      }
      char target[4096];
      ssize_t n = readlinkat(fd, "", target, sizeof target - 1);
      if (n < 0) {
        err = errno;
        goto fail;
      }
      target[n] = 0;
      close(fd);
      fd = -1;
      if (++links > WALK_LINKS) {
        err = ELOOP;
        goto fail;
      }
      int next = 1 - cur;
      if ((size_t)snprintf(buf[next], sizeof buf[next], "%s/%s", target, rest) >= sizeof buf[next]) {
        err = ENAMETOOLONG;
        goto fail;
      }
      cur = next;
      rest = buf[cur];
      if (target[0] == '/')
        while (depth > 0) close(stack[depth--]);
      continue;
    }
    if (!last && !S_ISDIR(st.st_mode)) {
      err = ENOTDIR;
      goto fail;
    }
    if (depth + 1 >= WALK_DEPTH) {
      err = ENAMETOOLONG;
      goto fail;
    }
    stack[++depth] = fd;
    fd = -1;
  }
  {
    struct stat st;
    if ((oflags & O_DIRECTORY) && (fstat(stack[depth], &st) < 0 || !S_ISDIR(st.st_mode))) {
      err = ENOTDIR;
      goto fail;
    }
    int result = stack[depth];
    while (depth > 0) {
      if (stack[depth] != result) close(stack[depth]);
      depth--;
    }
    if (stack[0] != result) close(stack[0]);
    return result;
  }
fail:
  if (fd >= 0) close(fd);
  while (depth >= 0) close(stack[depth--]);
  errno = err;
  return -1;
}

/*
 * Opens `path`, a path inside the container (absolute or not), relative to the
 * container's root (open_in_root) or the directory `rootfd` as if it were "/"
 * (open_beneath). `oflags` are O_PATH (always added), O_DIRECTORY, O_NOFOLLOW.
 */
static int open_beneath(int rootfd, const char *path, int oflags) {
  while (*path == '/') path++;
  if (!*path) path = ".";
  oflags |= O_PATH;
  if (have_openat2 && !force_walk) {
    int fd = openat2_retry(rootfd, path, (uint64_t)oflags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    /* EPERM: a seccomp profile in force (applied before the credentials change, as runc does)
     * that does not name openat2; the walk below has the same semantics */
    if (fd >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EPERM)) return fd;
    if (errno != EPERM) have_openat2 = 0;
  }
  return walk_in_root(rootfd, path, oflags);
}

static int open_in_root(const char *path, int oflags) {
  int rootfd = current_root();
  if (rootfd < 0) return -1;
  return open_beneath(rootfd, path, oflags);
}

/*
 * A path to create in the root, with dangling symlinks on the way taken as their targets
 * (runc's MkdirAllInRoot): "/etc/hosts" that links to "/run/x/hosts", where /run/x does not
 * exist yet, becomes "/run/x/hosts". Each link is read from its own fd, opened in the root
 * (O_PATH | O_NOFOLLOW); the new path is resolved in the root again, so no link leads out.
 * `out` gets the path (unchanged when nothing dangles); -1 on a loop (ELOOP) or error.
 */
static int expand_dangling(const char *path, char *out, size_t out_len) {
  char cur[4096], prefix[4096], link[4096];
  if (strlen(path) >= sizeof cur) return errno = ENAMETOOLONG, -1;
  strcpy(cur, path);
  for (int links = 0; links <= 40; links++) {
    int fd = open_in_root(cur, 0);
    if (fd >= 0 || errno != ENOENT) {
      if (fd >= 0) close(fd);
      break; /* it exists (or fails for another reason: the caller says so) */
    }
    /* the first component that does not resolve: missing (made by the caller), or a link */
    size_t n = strlen(cur), at = 0;
    int expanded = 0;
    while (at < n) {
      while (at < n && cur[at] == '/') at++;
      if (at >= n) break;
      size_t end = at;
      while (end < n && cur[end] != '/') end++;
      memcpy(prefix, cur, end);
      prefix[end] = 0;
      int probe = open_in_root(prefix, 0);
      if (probe >= 0) {
        close(probe);
        at = end;
        continue;
      }
      if (errno != ENOENT) return -1;
      int l = open_in_root(prefix, O_NOFOLLOW);
      if (l < 0) break; /* missing: the rest is made from here */
      struct stat st;
      ssize_t k = -1;
      if (fstat(l, &st) == 0 && S_ISLNK(st.st_mode)) k = readlinkat(l, "", link, sizeof link - 1);
      close(l);
      if (k <= 0) break;
      link[k] = 0;
      /* the link's target in place of the link: absolute from the root, else from its directory */
      char next[4096];
      size_t dir = at;
      while (dir > 0 && cur[dir - 1] == '/') dir--;
      int w = link[0] == '/' ? snprintf(next, sizeof next, "%s%s", link, cur + end)
                             : snprintf(next, sizeof next, "%.*s/%s%s", (int)dir, cur, link, cur + end);
      if (w < 0 || (size_t)w >= sizeof next) return errno = ENAMETOOLONG, -1;
      strcpy(cur, next);
      expanded = 1;
      break;
    }
    if (!expanded) break;
    if (links == 40) return errno = ELOOP, -1;
  }
  if (strlen(cur) >= out_len) return errno = ENAMETOOLONG, -1;
  strcpy(out, cur);
  return 0;
}

/*
 * mkdir -p inside the root: every missing component is made with mkdirat
 * relative to the fd of its parent (itself resolved in the root), then opened
 * with O_NOFOLLOW; a dangling link on the way is taken as its target
 * (expand_dangling). Returns an O_PATH fd of the directory.
 */
static int mkdir_in_root_once(const char *path, mode_t mode, int *dangling) {
  int fd = open_in_root(path, O_DIRECTORY);
  if (fd >= 0 || errno != ENOENT) return fd;
  char buf[4096];
  while (*path == '/') path++;
  if (strlen(path) >= sizeof buf) return errno = ENAMETOOLONG, -1;
  strcpy(buf, path);
  int parent = dup_fd(current_root());
  if (parent < 0) return -1;
  char *p = buf;
  for (;;) {
    while (*p == '/') p++;
    if (!*p) return parent;
    char *slash = strchr(p, '/');
    if (slash) *slash = 0;
    fd = open_in_root(buf, O_DIRECTORY);
    if (fd < 0 && errno == ENOENT && strcmp(p, "..") != 0 && strcmp(p, ".") != 0) {
      int existed = 0;
      if (mkdirat(parent, p, mode) < 0) {
        if (errno != EEXIST) {
          int e = errno;
          close(parent);
          return errno = e, -1;
        }
        existed = 1;
      }
      fd = openat(parent, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      /* there, but no directory to open: a link that leads nowhere yet (expand_dangling) */
      if (fd < 0 && existed && (errno == ELOOP || errno == ENOTDIR)) {
        struct stat st;
        if (fstatat(parent, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) *dangling = 1;
      }
    }
    int e = errno;
    close(parent);
    if (fd < 0) return errno = e, -1;
    parent = fd;
    if (!slash) return parent;
    *slash = '/';
    p = slash + 1;
  }
}

static int mkdir_in_root(const char *path, mode_t mode) {
  int dangling = 0;
  int fd = mkdir_in_root_once(path, mode, &dangling);
  if (fd >= 0 || !dangling) return fd;
  /* a dangling link on the way: made where it leads, in the root (the rare path) */
  char expanded[4096];
  if (expand_dangling(path, expanded, sizeof expanded) < 0) return -1;
  dangling = 0;
  fd = mkdir_in_root_once(expanded, mode, &dangling);
  return fd;
}

/* The last component of a path, and an fd of its parent directory made inside the root. */
static int parent_in_root(const char *path, char *base, size_t base_len) {
  char dir[4096];
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') len--;
  if (len >= sizeof dir) return errno = ENAMETOOLONG, -1;
  memcpy(dir, path, len);
  dir[len] = 0;
  char *slash = strrchr(dir, '/');
  const char *name = slash ? slash + 1 : dir;
  if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return errno = EINVAL, -1;
  if (strlen(name) >= base_len) return errno = ENAMETOOLONG, -1;
  strcpy(base, name);
  if (slash) {
    *slash = 0;
    return mkdir_in_root(*dir ? dir : "/", 0755);
  }
  return mkdir_in_root("/", 0755);
}

/* ---- procfs ---- */

static int is_procfs_root(int fd) {
  struct statfs sf;
  struct stat st;
  return fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC && fstat(fd, &st) == 0 &&
         st.st_ino == PROC_ROOT_INO;
}

/* Opens the procfs handle; called at start-up, before any namespace or mount of the container. */
static void open_proc(void) {
  int fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0 && !is_procfs_root(fd)) {
    close(fd);
    fd = -1;
  }
  proc_fd = fd;
}

#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif

/*
 * Called in the container's process once it is in its own pid namespace (right after the
 * clone): the runtime's procfs handle is swapped for a procfs of that pid namespace, made
 * fresh (fsopen: a new instance, never attached anywhere, so nothing can be mounted over any
 * of it). A process of the container that can reach this one's fds (with CAP_SYS_PTRACE,
 * through /proc/PID/fd/N, while it sets up or waits for `start`) then finds only the
 * container's own processes there: through the host's procfs, PID/root of any host process
 * was the host's root directory. Where the kernel cannot make one (fsopen is Linux 5.2+, and
 * a user namespace may forbid it) the runtime's handle is kept.
 */
static void own_proc(void) {
  int fs = (int)syscall(SYS_fsopen, "proc", 1 /* FSOPEN_CLOEXEC */);
  if (fs < 0) return;
  int m = -1;
  if (syscall(SYS_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) == 0)
    m = (int)syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */,
                     0x2 | 0x4 | 0x8 /* MOUNT_ATTR_NOSUID | NODEV | NOEXEC */);
  close(fs);
  if (m < 0) return;
  if (!is_procfs_root(m)) {
    close(m);
    return;
  }
  if (proc_fd >= 0) close(proc_fd);
  proc_fd = m;
}

/* Whether fsopen("proc") works here (Linux 5.2+, and allowed), so that own_proc() can. */
static int can_own_proc(void) {
  int fs = (int)syscall(SYS_fsopen, "proc", 1 /* FSOPEN_CLOEXEC */);
  if (fs < 0) return 0;
  close(fs);
  return 1;
}

/*
 * Whether the next fork or clone without CLONE_NEWPID lands in a pid namespace that already
 * has processes: one this process joined with setns (exec, a config's namespace path), where
 * the container's processes see the child from its first instruction on.
 */
static int children_join_pidns(void) {
  struct stat own, kids;
  if (proc_fd < 0) return 0;
  if (fstatat(proc_fd, "self/ns/pid", &own, 0) < 0 || fstatat(proc_fd, "self/ns/pid_for_children", &kids, 0) < 0)
    return 0;
  return own.st_ino != kids.st_ino || own.st_dev != kids.st_dev;
}

/*
 * Writes `value` to `rel`, a path below procfs ("sys/kernel/shmmax",
 * "self/oom_score_adj"). The lookup stays on the procfs mount (no mount
 * crossing, no magic links) and the opened file must still be on procfs.
 */
static int proc_write(const char *rel, const char *value) {
  if (proc_fd < 0) return errno = ENOENT, -1;
  while (*rel == '/') rel++;
  int fd = -1;
  int refused = 0; /* openat2 refused by a seccomp profile in force (EPERM) */
  if (have_openat2) {
    fd = openat2_retry(proc_fd, rel, O_WRONLY | O_NOCTTY, RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH);
    if (fd < 0 && (errno == ENOSYS || errno == E2BIG)) have_openat2 = 0;
    refused = fd < 0 && errno == EPERM;
  }
  if (!have_openat2 || refused) {
    /* no openat2: at least refuse anything that is not a procfs file after opening */
    fd = openat(proc_fd, rel, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW);
  }
  if (fd < 0) return -1;
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC) {
    close(fd);
    return errno = EXDEV, -1;
  }
  size_t len = strlen(value);
  ssize_t k;
  do k = write(fd, value, len); while (k < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (k < 0) return errno = e, -1;
  if ((size_t)k != len) return errno = EIO, -1;
  return 0;
}

#endif

/*
 * Mounts onto file descriptors.
 *
 * A mount's target is an fd resolved in the container's root (paths.h) at the
 * moment of the mount, never a path string the kernel would resolve again:
 * - bind mounts clone the source with open_tree() and attach the clone with
 *   move_mount() onto the target fd; their flags are set on the detached clone
 *   with mount_setattr() (recursively for rbind), so a bind mount is read-only
 *   before it is ever visible, submounts included;
 * - new filesystems (proc, tmpfs, sysfs, ...) are mounted with mount(2) on
 *   "." after fchdir() to the target's fd;
 * - remounts and propagation changes use mount_setattr() on the fd.
 * Where the new mount API is missing (kernels before 5.12), the same
 * operations fall back to mount(2) on "." or on /proc/self/fd/N through the
 * verified procfs handle.
 */
#ifndef BERTH_MOUNTS_H
#define BERTH_MOUNTS_H

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x04
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x40
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#define MOUNT_ATTR__ATIME 0x00000070
#define MOUNT_ATTR_RELATIME 0x00000000
#define MOUNT_ATTR_NOATIME 0x00000010
#define MOUNT_ATTR_STRICTATIME 0x00000020
#define MOUNT_ATTR_NODIRATIME 0x00000080
#endif
#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif

struct berth_mount_attr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};

static int have_mount_api = 1;

static unsigned long locked_flags_fd(int fd) {
  struct statvfs sv;
  unsigned long f = 0;
  if (fstatvfs(fd, &sv) < 0) return 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

/* mount(2) with `fd` as the target: "." after fchdir for a directory, else /proc/self/fd/N. */
static int mount_on_fd(const char *src, int fd, const char *type, unsigned long flags, const char *data) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -1;
  int r, e;
  if (S_ISDIR(st.st_mode)) {
    if (fchdir(fd) < 0) return -1;
    r = mount(src, ".", type, flags, data);
  } else {
    if (proc_fd < 0) return errno = ENOENT, -1;
    char name[32];
    snprintf(name, sizeof name, "self/fd/%d", fd);
    if (fchdir(proc_fd) < 0) return -1;
    r = mount(src, name, type, flags, data);
  }
  e = errno;
  if (chdir("/") < 0) { /* the cwd only matters again at the process's own chdir step */ }
  errno = e;
  return r;
}

static uint64_t attr_from_flags(unsigned long flags) {
  uint64_t a = 0;
  if (flags & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
  if (flags & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) a |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
  if (flags & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
  if (flags & MS_NOSYMFOLLOW) a |= MOUNT_ATTR_NOSYMFOLLOW;
  if (flags & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
  else if (flags & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
  return a;
}

static int setattr_fd(int fd, unsigned long flags, int recursive, uint64_t propagation) {
  struct berth_mount_attr attr = {0};
  attr.attr_set = attr_from_flags(flags);
  /* an atime mode replaces the old one */
  if ((flags & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME))) attr.attr_clr |= MOUNT_ATTR__ATIME;
  attr.propagation = propagation;
  return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                      sizeof attr);
}

/*
 * Binds `src_fd` (or, when it is -1, the host path `src`) onto `target_fd`,
 * with `flags` (MS_RDONLY, MS_NOSUID, ...) applied to the new mount before it
 * is attached, recursively when `rec`. `again` opens the target once more
 * (only used without the new mount API, to find the new mount for its flags).
 */
static int bind_on_fd(const char *src, int src_fd, int target_fd, int rec, unsigned long flags, int (*again)(void *),
                      void *again_arg) {
  if (have_mount_api) {
    int tree = (int)syscall(SYS_open_tree, src_fd >= 0 ? src_fd : AT_FDCWD, src_fd >= 0 ? "" : src,
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0) |
                                (src_fd >= 0 ? AT_EMPTY_PATH : 0));
    if (tree >= 0) {
      int r = 0;
      if (attr_from_flags(flags)) r = setattr_fd(tree, flags, rec, 0);
      if (r == 0)
        r = (int)syscall(SYS_move_mount, tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
      int e = errno;
      close(tree);
      errno = e;
      return r;
    }
    if (errno != ENOSYS) return -1;
    have_mount_api = 0;
  }
  /* the classic way: bind, then remount the new top mount with the flags */
  char srcpath[32];
  if (src_fd >= 0) {
    snprintf(srcpath, sizeof srcpath, "/proc/self/fd/%d", src_fd);
    src = srcpath;
  }
  if (mount_on_fd(src, target_fd, NULL, MS_BIND | (rec ? MS_REC : 0), NULL) < 0) return -1;
  if (!attr_from_flags(flags)) return 0;
  int top = again(again_arg);
  if (top < 0) return -1;
  int r = mount_on_fd(NULL, top, NULL, MS_BIND | MS_REMOUNT | flags, NULL);
  if (r < 0 && errno == EPERM) r = mount_on_fd(NULL, top, NULL, MS_BIND | MS_REMOUNT | flags | locked_flags_fd(top), NULL);
  int e = errno;
  close(top);
  errno = e;
  return r;
}

/*
 * A remount of a bind mount (MS_BIND | MS_REMOUNT | flags) or a propagation
 * change, on the mount at `fd`. Flags the kernel locked on the mount (in a
 * user namespace) are kept, as mount(8) would have to.
 */
static int remount_fd(int fd, unsigned long flags, const char *data) {
  unsigned long prop = flags & (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE);
  int rec = (flags & MS_REC) != 0;
  if (have_mount_api) {
    int r = setattr_fd(fd, prop ? 0 : flags, rec, prop);
    if (r == 0 || errno != ENOSYS) return r;
    have_mount_api = 0;
  }
  if (prop) return mount_on_fd(NULL, fd, NULL, prop | (flags & MS_REC), NULL);
  if (mount_on_fd(NULL, fd, NULL, flags, data) == 0) return 0;
  if (errno == EPERM) return mount_on_fd(NULL, fd, NULL, flags | locked_flags_fd(fd), data);
  return -1;
}

/* ---- tmpcopyup: the directory's old contents copied onto the tmpfs mounted over it ---- */

static int copy_tree(int from, int to, int depth);

static int copy_entry(int from, int to, const char *name, int depth) {
  struct stat st;
  if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return -1;
  mode_t perm = st.st_mode & 07777;
  if (S_ISDIR(st.st_mode)) {
    if (mkdirat(to, name, 0700) < 0 && errno != EEXIST) return -1;
    int s = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0) return -1;
    int d = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0) {
      close(s);
      return -1;
    }
    int r = copy_tree(s, d, depth + 1);
    if (r == 0) r = fchown(d, st.st_uid, st.st_gid);
    if (r == 0) r = fchmod(d, perm);
    if (r == 0) {
      struct timespec ts[2] = {st.st_atim, st.st_mtim};
      futimens(d, ts);
    }
    close(s);
    close(d);
    return r;
  }
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlinkat(from, name, target, sizeof target - 1);
    if (n < 0) return -1;
    target[n] = 0;
    if (symlinkat(target, to, name) < 0) return -1;
    return fchownat(to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
  }
  if (S_ISREG(st.st_mode)) {
    int s = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (s < 0) return -1;
    int d = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d < 0) {
      close(s);
      return -1;
    }
    char buf[65536];
    int r = 0;
    for (;;) {
      ssize_t k = read(s, buf, sizeof buf);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) r = -1;
      if (k <= 0) break;
      for (ssize_t off = 0; off < k;) {
        ssize_t w = write(d, buf + off, (size_t)(k - off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          r = -1;
          break;
        }
        off += w;
      }
      if (r < 0) break;
    }
    if (r == 0) r = fchown(d, st.st_uid, st.st_gid);
    if (r == 0) r = fchmod(d, perm);
    if (r == 0) {
      struct timespec ts[2] = {st.st_atim, st.st_mtim};
      futimens(d, ts);
    }
    int e = errno;
    close(s);
    close(d);
    errno = e;
    return r;
  }
  /* fifos, sockets and device nodes: made again, never opened */
  if (mknodat(to, name, st.st_mode, st.st_rdev) < 0) return -1;
  return fchownat(to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
}

static int copy_tree(int from, int to, int depth) {
  if (depth > 128) return errno = ELOOP, -1;
  int dfd = dup_fd(from);
  if (dfd < 0) return -1;
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return -1;
  }
  int r = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (copy_entry(from, to, e->d_name, depth) < 0) {
      r = -1;
      break;
    }
  }
  int err = errno;
  closedir(d);
  errno = err;
  return r;
}

#endif

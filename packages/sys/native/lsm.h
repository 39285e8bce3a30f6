/*
 * OP_LSM (44): write a process attribute under /proc — an LSM exec label
 * (AppArmor `exec PROFILE` to thread-self/attr/apparmor/exec, an SELinux
 * context to thread-self/attr/exec) or a time namespace's offsets
 * (self/timens_offsets) — through a procfs verified with fstatfs
 * (PROC_SUPER_MAGIC) both at /proc and at the file, never by a name the
 * container could have replaced. Included by launcher.c; static functions only.
 * args: s path relative to /proc (no "..", no leading "/"), s value.
 */
#include <sys/vfs.h>
#include <linux/magic.h>

static int lsm_is_proc(int fd) {
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0) return -1;
  if (sf.f_type != PROC_SUPER_MAGIC) return errno = EXDEV, -1;
  return 0;
}

static int step_lsm(struct step *s, const char **what) {
  const char *attr = Sx(s, 0), *value = Sx(s, 1);
  *what = "open /proc";
  int proc = open("/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (proc < 0) return -1;
  *what = "fstatfs /proc";
  if (lsm_is_proc(proc) < 0) {
    int e = errno;
    close(proc);
    return errno = e, -1;
  }
  *what = "open /proc attribute";
  if (attr[0] == '/' || strstr(attr, "..")) {
    close(proc);
    return errno = EINVAL, -1;
  }
  int fd = openat(proc, attr, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  int e = errno;
  close(proc);
  if (fd < 0) return errno = e, -1;
  *what = "fstatfs /proc attribute";
  if (lsm_is_proc(fd) < 0) {
    e = errno;
    close(fd);
    return errno = e, -1;
  }
  *what = "write /proc attribute";
  ssize_t k = write(fd, value, strlen(value));
  e = errno;
  close(fd);
  if (k < 0) return errno = e, -1;
  return 0;
}

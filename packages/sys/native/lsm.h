/*
 * OP_LSM (44): write an LSM attribute.
 *
 * Of the process (the usual case): a path under /proc — an LSM exec label
 * (AppArmor `exec PROFILE` to thread-self/attr/apparmor/exec, an SELinux
 * context to thread-self/attr/exec) or a time namespace's offsets
 * (self/timens_offsets) — written through the launcher's verified procfs
 * handle (paths.h: proc_write), never by a name the container could have
 * replaced.
 *
 * Of a directory in the container's root (FLAG_IN_ROOT): its SELinux label,
 * the security.selinux xattr, set on an fd of the directory resolved in the
 * root (paths.h: open_in_root) — runc's label.SetFileLabel for an mqueue
 * mount, whose superblock (the IPC namespace's) takes no context= option.
 *
 * Included by launcher.c; static functions only.
 * args: s path (relative to /proc, no "..", no leading "/"; or, in the root, the directory), s value.
 */
#include <sys/xattr.h>

static int step_lsm(struct step *s, const char **what) {
  if (s->flags & FLAG_IN_ROOT) {
    *what = "open";
    int pfd = open_in_root(Sx(s, 0), O_DIRECTORY);
    if (pfd < 0) return -1;
    /* an O_PATH fd takes no xattr: the directory itself, opened through it (never by name) */
    int fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    close(pfd);
    if (fd < 0) return errno = e, -1;
    *what = "set the SELinux label (security.selinux)";
    const char *label = Sx(s, 1);
    /* with its NUL, as libselinux's setfilecon writes it */
    int r = fsetxattr(fd, "security.selinux", label, strlen(label) + 1, 0);
    e = errno;
    close(fd);
    errno = e;
    return r;
  }
  /* through the procfs handle opened at start-up (paths.h): never a /proc the container could
   * have mounted over, no mount crossed below it, and the file must be on procfs */
  *what = "write process attribute";
  return proc_write(Sx(s, 0), Sx(s, 1));
}

/*
 * Joining the container's cgroup without the kernel's RCU grace period.
 * Included by launcher.c; static functions only.
 *
 * Writing a pid to cgroup.procs takes the kernel's threadgroup rwsem for
 * writing: the first such write after a quiet spell waits for a full RCU grace
 * period (6-11 ms measured on a 2-vCPU VM), on the path every container waits on.
 * Two moves skip that lock, and the runtime's plan uses them where it can:
 *
 * OP_CGROUP_JOIN (50), in the container's process, single-threaded, before it
 * runs anything of the image: it writes "0" (itself) to the `tasks` file of
 * each cgroup v1 directory the plan names. A thread moving itself needs no
 * threadgroup lock (cgroup_procs_write_start). args: s directory, ...
 *
 * The clone step's optional fourth argument, a cgroup2 directory: the child is
 * created in it (clone3 with CLONE_INTO_CGROUP, Linux 5.7+), so it never has to
 * move there. A kernel without clone3 or CLONE_INTO_CGROUP (ENOSYS, E2BIG,
 * EINVAL) gets a plain clone, and the launcher writes the child's pid to the
 * directory's cgroup.procs before the child goes on: the grace period is then
 * paid, and the result is the same.
 */
enum { OP_CGROUP_JOIN = 50 };

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

struct berth_clone_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

static int write_all_path(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = strlen(value);
  ssize_t k;
  do k = write(fd, value, len); while (k < 0 && errno == EINTR);
  int saved = errno;
  close(fd);
  errno = saved;
  return k == (ssize_t)len ? 0 : -1;
}

static int step_cgroup_join(struct step *s, const char **what) {
  char path[4096];
  for (uint32_t a = 0; a < s->nargs; a++) {
    const char *dir = S(s, a);
    if (!dir) continue;
    if (snprintf(path, sizeof path, "%s/tasks", dir) >= (int)sizeof path) return errno = ENAMETOOLONG, -1;
    *what = "write tasks";
    if (write_all_path(path, "0") < 0) return -1;
  }
  return 0;
}

/*
 * clone(flags) into the cgroup2 directory `cgroup` (NULL: a plain clone). Returns
 * what clone returns; in the parent, *moved_by_us tells that the kernel could not
 * clone into the cgroup and the child must be moved (see above).
 */
static pid_t clone_into_cgroup(unsigned long flags, const char *cgroup, int *must_move) {
  *must_move = 0;
  if (!cgroup) return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  int dir = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  struct berth_clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = (uint64_t)flags | CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = (uint64_t)dir;
  pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL)) {
    pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid > 0) *must_move = 1;
  }
  if (pid != 0) {
    int saved = errno;
    close(dir);
    errno = saved;
  } else {
    close(dir);
  }
  return pid;
}

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
enum { OP_CGROUP_JOIN = 50, OP_CGROUP_OPEN = 51 };

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/*
 * OP_CGROUP_OPEN (51), before namespaces are joined by a process that will not see the
 * host's cgroup files afterwards (exec joins the container's mount namespace): opens the
 * cgroup2 directory (args: s dir, "" for none) for the next clone, and the `tasks` file of
 * each v1 directory (then: s dir, ...) for a later OP_CGROUP_JOIN without arguments, which
 * writes "0" to them. Close-on-exec, closed once used: nothing of them reaches the program.
 */
#define MAX_CGROUP_TASKS 32
static int cgroup_dir_fd = -1;
static int cgroup_tasks_fds[MAX_CGROUP_TASKS];
static int cgroup_tasks_n = 0;

static void close_cgroup_fds(void) {
  if (cgroup_dir_fd >= 0) close(cgroup_dir_fd);
  cgroup_dir_fd = -1;
  for (int k = 0; k < cgroup_tasks_n; k++) close(cgroup_tasks_fds[k]);
  cgroup_tasks_n = 0;
}

static int step_cgroup_open(struct step *s, const char **what) {
  const char *dir2 = S(s, 0);
  if (dir2) {
    *what = "open the cgroup2 directory";
    /* A detached copy of the directory's mount (open_tree), rooted at it: the child holds this
     * fd for its first instructions, where a process of the container with CAP_SYS_PTRACE can
     * reach it through /proc/PID/fd; from its root `..` leads nowhere, so never to the host's
     * other cgroups. A plain open where open_tree is missing (Linux < 5.2). */
    cgroup_dir_fd = (int)syscall(SYS_open_tree, AT_FDCWD, dir2, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (cgroup_dir_fd < 0 && (cgroup_dir_fd = open(dir2, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) return -1;
  }
  char path[4096];
  for (uint32_t a = 1; a < s->nargs; a++) {
    const char *dir = S(s, a);
    if (!dir) continue;
    if (cgroup_tasks_n == MAX_CGROUP_TASKS) return errno = E2BIG, -1;
    if (snprintf(path, sizeof path, "%s/tasks", dir) >= (int)sizeof path) return errno = ENAMETOOLONG, -1;
    *what = "open tasks";
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    cgroup_tasks_fds[cgroup_tasks_n++] = fd;
  }
  return 0;
}

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

/*
 * In the parent, right after the clone (the child waits on its order pipe): the child's tid is
 * written to the `tasks` files OP_CGROUP_OPEN opened (a thread moved alone takes no threadgroup
 * lock), and they are closed. The child closes its copies first thing: these host files are
 * never its to hold while the container can see it (a later OP_CGROUP_JOIN finds none left).
 */
static int cgroup_tasks_for(pid_t child) {
  char value[32];
  snprintf(value, sizeof value, "%d", (int)child);
  int r = 0;
  for (int k = 0; k < cgroup_tasks_n && r == 0; k++) {
    ssize_t w;
    do w = write(cgroup_tasks_fds[k], value, strlen(value)); while (w < 0 && errno == EINTR);
    if (w != (ssize_t)strlen(value)) r = -1;
  }
  int e = errno;
  close_cgroup_fds();
  errno = e;
  return r;
}

static int step_cgroup_join(struct step *s, const char **what) {
  if (s->nargs == 0) { /* the tasks files OP_CGROUP_OPEN opened */
    *what = "write tasks";
    for (int k = 0; k < cgroup_tasks_n; k++) {
      ssize_t w;
      do w = write(cgroup_tasks_fds[k], "0", 1); while (w < 0 && errno == EINTR);
      if (w != 1) return -1;
    }
    close_cgroup_fds();
    return 0;
  }
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
 * clone(flags) into the cgroup2 directory `cgroup`, or the one OP_CGROUP_OPEN opened
 * (neither: a plain clone). Where the kernel cannot clone into a cgroup, a plain
 * clone, and the parent writes the child's pid to the directory's cgroup.procs
 * before it returns (the child waits on its order pipe meanwhile); should that
 * fail, the child is killed and -1 returned. In the parent the opened directory is
 * closed; in the child too (its tasks files stay for OP_CGROUP_JOIN).
 */
static pid_t clone_into_cgroup(unsigned long flags, const char *cgroup) {
  if (!cgroup && cgroup_dir_fd < 0) return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  int dir = cgroup ? open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : cgroup_dir_fd;
  if (dir < 0) return -1;
  cgroup_dir_fd = -1;
  struct berth_clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = (uint64_t)flags | CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = (uint64_t)dir;
  int must_move = 0;
  pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL)) {
    pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    must_move = pid > 0;
  }
  int saved = errno;
  if (must_move) {
    char value[32];
    snprintf(value, sizeof value, "%d", (int)pid);
    int fd = openat(dir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    ssize_t w = -1;
    if (fd >= 0) {
      do w = write(fd, value, strlen(value)); while (w < 0 && errno == EINTR);
      saved = errno;
      close(fd);
    } else {
      saved = errno;
    }
    if (w != (ssize_t)strlen(value)) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      pid = -1;
    }
  }
  close(dir);
  errno = saved;
  return pid;
}

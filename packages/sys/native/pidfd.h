/*
 * The container's processes are reached through pidfds: a pid that was reused
 * by another process is never signalled or joined.
 *
 * OP_PIDFD_SETNS (34): args: pid, start time (/proc/PID/stat field 22; 0: no
 * check), namespace flags. Opens a pidfd for the pid, checks that the process
 * behind it is the one that started at that time, and joins its namespaces
 * with setns(pidfd, flags) (5.8+), or, on older kernels, through
 * the namespace files under /proc/PID/ns of the verified procfs, checked again after opening.
 *
 * OP_PIDFD_KILL (35): args: pid, start time, signal: pidfd_send_signal.
 */
#ifndef BERTH_PIDFD_H
#define BERTH_PIDFD_H

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* field 22 of /proc/PID/stat, read through the verified procfs; 0 when the process is gone */
static unsigned long long start_time_of(int pid) {
  char rel[64], buf[1024];
  snprintf(rel, sizeof rel, "%d/stat", pid);
  int fd = proc_fd >= 0 ? openat(proc_fd, rel, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  /* after ") ": field 3 (state) is the first; starttime is field 22 */
  int field = 2;
  for (p++; *p && field < 22; p++)
    if (*p == ' ') field++;
  if (field != 22) return 0;
  if (*p == 'Z' || *p == 'X') return 0;
  return strtoull(p, NULL, 10);
}

/* A pidfd for `pid`, only if it is the process that started at `start`. */
static int open_pidfd(int pid, unsigned long long start) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return -1;
  /* the pidfd pins the process it was opened for: if that one is ours, so is the pidfd */
  if (start && start_time_of(pid) != start) {
    close(fd);
    return errno = ESRCH, -1;
  }
  return fd;
}

static const struct { int flag; const char *name; } NS_FILES[] = {
    {CLONE_NEWUSER, "user"}, {CLONE_NEWIPC, "ipc"},       {CLONE_NEWUTS, "uts"}, {CLONE_NEWNET, "net"},
    {CLONE_NEWPID, "pid"},   {CLONE_NEWCGROUP, "cgroup"}, {0x80 /* CLONE_NEWTIME */, "time"},
    {CLONE_NEWNS, "mnt"},
};

static int step_pidfd_setns(struct step *s) {
  int pid = (int)I(s, 0);
  unsigned long long start = (unsigned long long)I(s, 1);
  int flags = (int)I(s, 2);
  what = "pidfd_open";
  int pfd = open_pidfd(pid, start);
  if (pfd < 0) return -1;
  what = "setns";
  if (setns(pfd, flags) == 0) {
    close(pfd);
    return 0;
  }
  if (errno != EINVAL) {
    int e = errno;
    close(pfd);
    return errno = e, -1;
  }
  /* kernels before 5.8: the namespace files, opened while the pidfd pins the process */
  int fds[8];
  int n = 0;
  for (size_t k = 0; k < sizeof NS_FILES / sizeof NS_FILES[0]; k++) {
    if (!(flags & NS_FILES[k].flag)) continue;
    char rel[64];
    snprintf(rel, sizeof rel, "%d/ns/%s", pid, NS_FILES[k].name);
    what = "open namespace";
    fds[n] = proc_fd >= 0 ? openat(proc_fd, rel, O_RDONLY | O_CLOEXEC) : -1;
    if (fds[n] < 0) goto fail;
    n++;
  }
  /* still the same process? (a signal 0 through the pidfd fails once it has exited) */
  what = "pidfd_send_signal";
  if (syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) < 0 || (start && start_time_of(pid) != start)) {
    errno = ESRCH;
    goto fail;
  }
  what = "setns";
  for (int k = 0, j = 0; k < (int)(sizeof NS_FILES / sizeof NS_FILES[0]); k++) {
    if (!(flags & NS_FILES[k].flag)) continue;
    if (setns(fds[j++], NS_FILES[k].flag) < 0) goto fail;
  }
  for (int k = 0; k < n; k++) close(fds[k]);
  close(pfd);
  return 0;
fail: {
  int e = errno;
  for (int k = 0; k < n; k++) close(fds[k]);
  close(pfd);
  return errno = e, -1;
}
}

static int step_pidfd_kill(struct step *s) {
  what = "pidfd_open";
  int pfd = open_pidfd((int)I(s, 0), (unsigned long long)I(s, 1));
  if (pfd < 0) return -1;
  what = "pidfd_send_signal";
  int r = (int)syscall(SYS_pidfd_send_signal, pfd, (int)I(s, 2), NULL, 0);
  int e = errno;
  close(pfd);
  return errno = e, r;
}

#endif

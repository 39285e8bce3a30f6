/*
 * berth-vmm: the host process of a berth VM container, QEMU's parent.
 *
 *   berth-vmm STATUS_FILE QEMU [QEMU_ARGS...]
 *
 * Its pid is the container's pid on the host (berth state, --pid-file), so the
 * tools that wait for a container's process (conmon, containerd's shim) wait
 * for this one, and its exit status is the container's: the guest agent's last
 * "exit CODE" line in STATUS_FILE (runc's rule: 128+N for signal N), read once
 * QEMU is gone. QEMU dies with it (PR_SET_PDEATHSIG), and a signal that would
 * end it is passed to QEMU first, so no VM outlives its container's process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t qemu = 0;
static volatile sig_atomic_t received = 0;

static void forward(int sig) {
  received = sig;
  if (qemu > 0) kill(qemu, sig == SIGINT || sig == SIGHUP || sig == SIGQUIT ? SIGTERM : sig);
}

/* The last "exit CODE" line of the agent's status file, or -1. */
static int guest_status(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  char line[256];
  int code = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "exit ", 5)) code = atoi(line + 5);
  fclose(f);
  return code;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: berth-vmm STATUS_FILE QEMU [ARGS...] (run by @berth/vm)\n");
    return 2;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    perror("berth-vmm: fork");
    return 1;
  }
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) _exit(1);
    execv(argv[2], argv + 2);
    fprintf(stderr, "berth-vmm: exec %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  qemu = pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
  int st;
  for (;;) {
    pid_t r = waitpid(pid, &st, 0);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return 255;
  }
  int code = guest_status(argv[1]);
  if (code >= 0) return code;
  /* QEMU ended before the guest reported: a signal's status, else a failure */
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  if (received) return 128 + received;
  return WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 255;
}

/*
 * OP_SECCOMP (40): load a seccomp filter compiled by @berth/sys (libseccomp,
 * in TypeScript). Included by launcher.c; static functions only.
 *
 * args: s program (hex of struct sock_filter[]: plan strings may not hold
 * NULs), i flags (seccomp(2) SECCOMP_FILTER_FLAG_*), i notify (0/1).
 * With notify, the filter made a listener fd: we report its number in a
 * SECCOMP message (kind 5, value = fd), wait for one byte (`g` goes on) while
 * the runtime copies it with pidfd_getfd(2) and hands it to the seccomp agent,
 * then close our copy.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>

#define MSG_SECCOMP 5

static int seccomp_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void step_seccomp(struct step *s, int i) {
  const char *hex = Sx(s, 0);
  size_t hl = strlen(hex);
  if (hl == 0 || hl % 16 != 0 || hl / 16 > BPF_MAXINSNS) die(i, "seccomp: bad program", EINVAL);
  size_t n = hl / 2;
  unsigned char *prog_bytes = malloc(n);
  if (!prog_bytes) die(i, "seccomp", ENOMEM);
  for (size_t k = 0; k < n; k++) {
    int hi = seccomp_hex(hex[2 * k]), lo = seccomp_hex(hex[2 * k + 1]);
    if (hi < 0 || lo < 0) die(i, "seccomp: bad program", EINVAL);
    prog_bytes[k] = (unsigned char)(hi << 4 | lo);
  }
  struct sock_fprog prog = {.len = (unsigned short)(n / sizeof(struct sock_filter)),
                            .filter = (struct sock_filter *)prog_bytes};
  unsigned int flags = (unsigned int)I(s, 1);
  int notify = (int)I(s, 2);
  /* From here on every syscall we make is filtered: no free(), nothing but what follows. */
  long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
  if (fd < 0) die(i, "seccomp", errno);
  if (!notify) return;
  send_msg(MSG_SECCOMP, i, 0, (int)fd, "seccomp");
  char go;
  ssize_t k;
  do k = read(sync_fd, &go, 1); while (k < 0 && errno == EINTR);
  if (k != 1) _exit(1); /* the parent gave up: it already knows why */
  if (go != 'g') die(i, "seccomp: parent could not pass the listener fd on", ECANCELED);
  close((int)fd);
}

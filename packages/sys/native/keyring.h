/*
 * OP_KEYRING (41): the container's own session keyring.
 * Included by launcher.c; static functions only.
 *
 * Kernel keyrings are not namespaced: without this a container possesses the
 * session keyring of whoever ran the runtime. As runc does, the process joins
 * a new keyring named by the plan (`_ses.ID`), then its permissions become
 * (current & mask) | set (the plan's policy; runc adds "user may search").
 *
 * args: s name, i mask, i set.
 * A kernel without keyrings (ENOSYS) is let through, as runc does; any other
 * failure stops the container: it must not run with a keyring it shares.
 */
#include <linux/keyctl.h>

enum { OP_KEYRING = 41 };

static int step_keyring(struct step *s, const char **what) {
  const char *name = Sx(s, 0);
  uint32_t mask = (uint32_t)I(s, 1), set = (uint32_t)I(s, 2);
  *what = "keyctl KEYCTL_JOIN_SESSION_KEYRING";
  long id = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0);
  if (id < 0) return errno == ENOSYS ? 0 : -1;
  /* KEYCTL_DESCRIBE: "type;uid;gid;perm;description", perm in hex */
  char desc[512];
  *what = "keyctl KEYCTL_DESCRIBE";
  long n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, desc, sizeof desc, 0);
  if (n < 0) return -1;
  desc[sizeof desc - 1] = 0;
  const char *p = desc;
  for (int field = 0; field < 3 && p; field++) {
    p = strchr(p, ';');
    if (p) p++;
  }
  if (!p) return errno = EINVAL, -1;
  char *end;
  unsigned long perm = strtoul(p, &end, 16);
  if (end == p || *end != ';') return errno = EINVAL, -1;
  *what = "keyctl KEYCTL_SETPERM";
  if (syscall(SYS_keyctl, KEYCTL_SETPERM, id, ((uint32_t)perm & mask) | set, 0, 0) < 0) return -1;
  return 0;
}

/*
 * OP_IOPRIO (43): process.ioPriority and linux.personality, one opcode.
 * Included by launcher.c; static functions only.
 * args: i which (0: ioprio_set(IOPRIO_WHO_PROCESS, 0, value); 1: personality(value)), i value.
 * Sets *what to the syscall for the error report.
 */
#include <sys/personality.h>

#ifndef SYS_ioprio_set
#define SYS_ioprio_set 251
#endif

static int step_ioprio(struct step *s, const char **what) {
  if (I(s, 0) == 1) {
    *what = "personality";
    return personality((unsigned long)I(s, 1)) < 0 ? -1 : 0;
  }
  *what = "ioprio_set";
  return (int)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (int)I(s, 1));
}

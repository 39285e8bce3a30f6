/*
 * OP_IOPRIO (43): process.ioPriority, linux.personality and linux.memoryPolicy, one opcode.
 * Included by launcher.c; static functions only.
 * args: i which (0: ioprio_set(IOPRIO_WHO_PROCESS, 0, value); 1: personality(value);
 * 2: set_mempolicy(value, the nodes that follow as ints, each < MPOL_MAX_NODES);
 * 3: sched_setaffinity(0, the cpus that follow as ints, each < AFFINITY_MAX_CPUS); value 1:
 * every CPU, narrowed by the kernel to the cpuset's, a refusal let through), i value.
 * Sets *what to the syscall for the error report.
 */
#include <sys/personality.h>

#ifndef SYS_ioprio_set
#define SYS_ioprio_set 251
#endif

#ifndef SYS_set_mempolicy
#define SYS_set_mempolicy 238
#endif
#define MPOL_MAX_NODES 1024

#define AFFINITY_MAX_CPUS 8192

static int step_ioprio(struct step *s, const char **what) {
  if (I(s, 0) == 3) {
    *what = "sched_setaffinity";
    unsigned long mask[AFFINITY_MAX_CPUS / (8 * sizeof(unsigned long))] = {0};
    if (I(s, 1) == 1) {
      /* reset: every CPU, which the kernel narrows to the cpuset's; a refusal is let through */
      memset(mask, 0xff, sizeof mask);
      int e = errno;
      if (syscall(SYS_sched_setaffinity, 0, sizeof mask, mask) < 0) errno = e;
      return 0;
    }
    for (uint32_t a = 2; a < s->nargs; a++) {
      int64_t cpu = I(s, a);
      if (cpu < 0 || cpu >= AFFINITY_MAX_CPUS) return errno = EINVAL, -1;
      mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    }
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof mask, mask);
  }
  if (I(s, 0) == 2) {
    *what = "set_mempolicy";
    unsigned long mask[MPOL_MAX_NODES / (8 * sizeof(unsigned long))] = {0};
    int any = 0;
    for (uint32_t a = 2; a < s->nargs; a++) {
      int64_t node = I(s, a);
      if (node < 0 || node >= MPOL_MAX_NODES) return errno = EINVAL, -1;
      mask[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
      any = 1;
    }
    /* the kernel reads maxnode - 1 bits */
    return (int)syscall(SYS_set_mempolicy, (int)I(s, 1), any ? mask : NULL, any ? MPOL_MAX_NODES + 1 : 0);
  }
  if (I(s, 0) == 1) {
    *what = "personality";
    return personality((unsigned long)I(s, 1)) < 0 ? -1 : 0;
  }
  *what = "ioprio_set";
  return (int)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (int)I(s, 1));
}

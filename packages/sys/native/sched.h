/*
 * OP_SCHED (42): sched_setattr(2) on this process (process.scheduler).
 * Included by launcher.c; static functions only.
 * args: i policy, i flags, i nice, i priority, i runtime, i deadline, i period.
 */
struct berth_sched_attr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
};

#ifndef SYS_sched_setattr
#define SYS_sched_setattr 314
#endif

static int step_sched(struct step *s) {
  struct berth_sched_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.sched_policy = (uint32_t)I(s, 0);
  a.sched_flags = (uint64_t)I(s, 1);
  a.sched_nice = (int32_t)I(s, 2);
  a.sched_priority = (uint32_t)I(s, 3);
  a.sched_runtime = (uint64_t)I(s, 4);
  a.sched_deadline = (uint64_t)I(s, 5);
  a.sched_period = (uint64_t)I(s, 6);
  return (int)syscall(SYS_sched_setattr, 0, &a, 0);
}

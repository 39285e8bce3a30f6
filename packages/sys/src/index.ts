export { BerthError, type BerthErrorFields, errnoName, errnoNumber, SysError, strerror } from './errors.js';
export {
  compileLauncher,
  Launch,
  LaunchError,
  type LaunchEvent,
  type LaunchOptions,
  launch,
  launcherPath,
  launcherSource,
  type StdioEntry,
} from './launcher.js';
export {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
  describeStep,
  encodePlan,
  MNT_DETACH,
  MS,
  Op,
  PLAN_VERSION,
  type PlanStep,
  type Step,
} from './plan.js';
export { libc, RecordingSys, type Sys, type SysCall } from './sys.js';

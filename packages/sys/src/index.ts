export { BerthError, type BerthErrorFields, SysError, errnoName, errnoNumber, strerror } from './errors.js';
export {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
  MNT_DETACH,
  MS,
  Op,
  PLAN_VERSION,
  type PlanStep,
  type Step,
  describeStep,
  encodePlan,
} from './plan.js';
export {
  Launch,
  LaunchError,
  type LaunchEvent,
  type LaunchOptions,
  compileLauncher,
  launch,
  launcherPath,
  launcherSource,
} from './launcher.js';
export { RecordingSys, type Sys, type SysCall, libc } from './sys.js';

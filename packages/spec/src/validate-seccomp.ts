import {
  arrayField,
  asObject,
  at,
  intField,
  type JsonObject,
  type Problems,
  stringArrayField,
  stringField,
} from './check.js';
import { SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_FLAGS, SECCOMP_OPERATORS } from './constants.js';

// config-linux.md: the runtime MUST fail when errnoRet is given for an action that has no errno
const ERRNO_ACTIONS = ['SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE'];

// The fields of linux.seccomp, its rules and their arguments (runtime-spec 1.2). The spec lets a
// runtime ignore unknown properties, but in a seccomp filter an unknown one is a rule nobody
// applies: a misspelt "syscall" would leave the container unconfined. berth refuses it.
const SECCOMP_FIELDS = [
  'defaultAction',
  'defaultErrnoRet',
  'architectures',
  'flags',
  'listenerPath',
  'listenerMetadata',
  'syscalls',
];
const RULE_FIELDS = ['names', 'action', 'errnoRet', 'args'];
const ARG_FIELDS = ['index', 'value', 'valueTwo', 'op'];

function refuseUnknown(p: Problems, o: JsonObject, base: string, known: readonly string[]): void {
  for (const key of Object.keys(o))
    if (!known.includes(key))
      p.add(
        at(base, key),
        `is not a seccomp field (known: ${known.join(', ')}); refused, as a rule nobody applies would confine less than the filter says`,
      );
}

export function validateSeccomp(p: Problems, seccomp: JsonObject, base: string): void {
  refuseUnknown(p, seccomp, base, SECCOMP_FIELDS);
  const defaultAction = stringField(p, seccomp, 'defaultAction', base, {
    required: true,
    oneOf: SECCOMP_ACTIONS,
    what: 'a seccomp action',
  });
  const defaultErrno = intField(p, seccomp, 'defaultErrnoRet', base, 'uint32');
  if (defaultErrno !== undefined && defaultAction !== undefined && !ERRNO_ACTIONS.includes(defaultAction)) {
    p.add(at(base, 'defaultErrnoRet'), `is not allowed with defaultAction ${defaultAction}`);
  }
  stringArrayField(p, seccomp, 'architectures', base, {
    oneOf: SECCOMP_ARCHES,
    what: 'a seccomp architecture',
  });
  stringArrayField(p, seccomp, 'flags', base, { oneOf: SECCOMP_FLAGS, what: 'a seccomp filter flag' });
  stringField(p, seccomp, 'listenerPath', base, { absolute: true });
  stringField(p, seccomp, 'listenerMetadata', base);
  // runc: the container reports its listener fd with write(2), so NOTIFY can be neither the default nor on write
  if (defaultAction === 'SCMP_ACT_NOTIFY') {
    p.add(at(base, 'defaultAction'), 'SCMP_ACT_NOTIFY cannot be the default action');
  }
  let notify = false;

  arrayField(p, seccomp, 'syscalls', base, (item, path) => {
    const rule = asObject(p, item, path);
    if (!rule) return;
    refuseUnknown(p, rule, path, RULE_FIELDS);
    stringArrayField(p, rule, 'names', path, { required: true, nonEmptyArray: true, nonEmpty: true });
    const action = stringField(p, rule, 'action', path, {
      required: true,
      oneOf: SECCOMP_ACTIONS,
      what: 'a seccomp action',
    });
    if (action === 'SCMP_ACT_NOTIFY') {
      notify = true;
      const names = rule['names'];
      if (Array.isArray(names) && names.includes('write')) {
        p.add(at(path, 'names'), 'SCMP_ACT_NOTIFY cannot be used for the write syscall');
      }
    }
    const errno = intField(p, rule, 'errnoRet', path, 'uint32');
    if (errno !== undefined && action !== undefined && !ERRNO_ACTIONS.includes(action)) {
      p.add(at(path, 'errnoRet'), `is not allowed with action ${action}`);
    }
    arrayField(p, rule, 'args', path, (argItem, argPath) => {
      const arg = asObject(p, argItem, argPath);
      if (!arg) return;
      refuseUnknown(p, arg, argPath, ARG_FIELDS);
      // seccomp filters see at most six syscall arguments
      intField(p, arg, 'index', argPath, 'uint32', { required: true, max: 5 });
      intField(p, arg, 'value', argPath, 'uint64', { required: true });
      intField(p, arg, 'valueTwo', argPath, 'uint64');
      stringField(p, arg, 'op', argPath, {
        required: true,
        oneOf: SECCOMP_OPERATORS,
        what: 'a seccomp operator',
      });
    });
  });
  if (notify && seccomp['listenerPath'] === undefined) {
    p.add(
      at(base, 'listenerPath'),
      'is required when a rule uses SCMP_ACT_NOTIFY (the agent gets the listener fd there)',
    );
  }
}

import {
  arrayField,
  asObject,
  at,
  boolField,
  intField,
  type JsonObject,
  mapField,
  objectField,
  type Problems,
  stringArrayField,
  stringField,
  stringMapField,
} from './check.js';
import {
  MEMORY_POLICY_FLAGS,
  MEMORY_POLICY_MODES,
  NAMESPACE_TYPES,
  ROOTFS_PROPAGATIONS,
  TIME_OFFSET_CLOCKS,
} from './constants.js';
import { checkResources } from './validate-resources.js';
import { validateSeccomp } from './validate-seccomp.js';

const DEVICE_TYPES = ['c', 'b', 'u', 'p'];

export function validateIdMappings(p: Problems, parent: JsonObject, key: string, base: string): boolean {
  const list = arrayField(p, parent, key, base, (item, path) => {
    const m = asObject(p, item, path);
    if (!m) return;
    intField(p, m, 'containerID', path, 'uint32', { required: true });
    intField(p, m, 'hostID', path, 'uint32', { required: true });
    intField(p, m, 'size', path, 'uint32', { required: true });
  });
  return list !== undefined;
}

export function validateLinux(p: Problems, linux: JsonObject, base: string): void {
  const userNamespace = validateNamespaces(p, linux, base);

  const uid = validateIdMappings(p, linux, 'uidMappings', base);
  const gid = validateIdMappings(p, linux, 'gidMappings', base);
  // runc refuses mappings it has no user namespace to write them to
  if ((uid || gid) && userNamespace === false) {
    p.add(at(base, uid ? 'uidMappings' : 'gidMappings'), 'requires a "user" entry in linux.namespaces');
  }

  mapField(p, linux, 'timeOffsets', base, (value, path, clock) => {
    if (!TIME_OFFSET_CLOCKS.includes(clock)) {
      p.add(
        path,
        `${JSON.stringify(clock)} is not a clock a time namespace can offset (boottime, monotonic)`,
      );
      return;
    }
    const off = asObject(p, value, path);
    if (!off) return;
    intField(p, off, 'secs', path, 'int64');
    intField(p, off, 'nanosecs', path, 'uint32', { max: 999_999_999 });
  });

  validateDevices(p, linux, base);

  mapField(p, linux, 'netDevices', base, (value, path) => {
    const dev = asObject(p, value, path);
    if (dev) stringField(p, dev, 'name', path);
  });

  stringField(p, linux, 'cgroupsPath', base);
  const resources = objectField(p, linux, 'resources', base);
  if (resources) checkResources(p, resources, at(base, 'resources'));

  const rdt = objectField(p, linux, 'intelRdt', base);
  if (rdt) {
    const path = at(base, 'intelRdt');
    stringField(p, rdt, 'closID', path);
    if (typeof rdt['schemata'] !== 'string') stringArrayField(p, rdt, 'schemata', path);
    stringField(p, rdt, 'l3CacheSchema', path);
    stringField(p, rdt, 'memBwSchema', path, { pattern: /^MB:/, patternText: 'must start with "MB:"' });
    for (const key of ['enableCMT', 'enableMBM', 'enableMonitoring']) boolField(p, rdt, key, path);
  }

  stringMapField(p, linux, 'sysctl', base);

  const seccomp = objectField(p, linux, 'seccomp', base);
  if (seccomp) validateSeccomp(p, seccomp, at(base, 'seccomp'));

  stringField(p, linux, 'rootfsPropagation', base, {
    oneOf: ROOTFS_PROPAGATIONS,
    what: 'a mount propagation (shared, slave, private or unbindable)',
  });
  stringArrayField(p, linux, 'maskedPaths', base, { absolute: true });
  stringArrayField(p, linux, 'readonlyPaths', base, { absolute: true });
  stringField(p, linux, 'mountLabel', base);

  const pers = objectField(p, linux, 'personality', base);
  if (pers) {
    const path = at(base, 'personality');
    stringField(p, pers, 'domain', path, {
      required: true,
      oneOf: ['LINUX', 'LINUX32'],
      what: 'a personality domain (LINUX or LINUX32)',
    });
    stringArrayField(p, pers, 'flags', path);
  }

  const mpol = objectField(p, linux, 'memoryPolicy', base);
  if (mpol) {
    const path = at(base, 'memoryPolicy');
    stringField(p, mpol, 'mode', path, {
      required: true,
      oneOf: MEMORY_POLICY_MODES,
      what: 'a memory policy mode',
    });
    stringField(p, mpol, 'nodes', path, {
      pattern: /^[0-9, -]*$/,
      patternText: 'is not a node list like "0-3,7"',
    });
    stringArrayField(p, mpol, 'flags', path, { oneOf: MEMORY_POLICY_FLAGS, what: 'a memory policy flag' });
  }
}

/** Returns whether a user namespace is listed, or undefined when the list is unusable. */
function validateNamespaces(p: Problems, linux: JsonObject, base: string): boolean | undefined {
  const seen = new Map<string, number>();
  const list = arrayField(p, linux, 'namespaces', base, (item, path, i) => {
    const ns = asObject(p, item, path);
    if (!ns) return;
    const type = stringField(p, ns, 'type', path, {
      required: true,
      oneOf: NAMESPACE_TYPES,
      what: 'a namespace type',
    });
    if (type !== undefined) {
      const first = seen.get(type);
      if (first !== undefined) {
        const firstPath = at(at(base, 'namespaces'), first);
        p.add(at(path, 'type'), `${JSON.stringify(type)} is already listed at ${firstPath}`);
      } else seen.set(type, i);
    }
    stringField(p, ns, 'path', path, { absolute: true });
  });
  if (list === undefined) return linux['namespaces'] === undefined ? false : undefined;
  return seen.has('user');
}

function validateDevices(p: Problems, linux: JsonObject, base: string): void {
  arrayField(p, linux, 'devices', base, (item, path) => {
    const dev = asObject(p, item, path);
    if (!dev) return;
    const type = stringField(p, dev, 'type', path, {
      required: true,
      oneOf: DEVICE_TYPES,
      what: 'a device type (c, b, u or p)',
    });
    stringField(p, dev, 'path', path, { required: true, absolute: true });
    // a fifo has no device numbers; every other type needs both
    const needsNumbers = type !== 'p';
    // what a dev_t holds (12 bits of major, 20 of minor): a larger or negative number would be
    // cut to another device's
    intField(p, dev, 'major', path, 'int64', { required: needsNumbers, min: 0, max: 4095 });
    intField(p, dev, 'minor', path, 'int64', { required: needsNumbers, min: 0, max: 1048575 });
    intField(p, dev, 'fileMode', path, 'uint32');
    intField(p, dev, 'uid', path, 'uint32');
    intField(p, dev, 'gid', path, 'uint32');
  });
}

import {
  arrayField,
  asObject,
  at,
  boolField,
  intField,
  isObject,
  type JsonObject,
  mapField,
  objectField,
  Problems,
  stringArrayField,
  stringField,
} from './check.js';
import { HOOK_NAMES } from './constants.js';
import type { SpecProblem } from './types.js';
import { validateIdMappings, validateLinux } from './validate-linux.js';
import { ENV_ENTRY, validateProcess } from './validate-process.js';

// semver.org 2.0.0, the format config.md requires for ociVersion
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

const OTHER_PLATFORMS = ['solaris', 'windows', 'vm', 'zos'];

/**
 * Checks a parsed config.json against the OCI runtime-spec and returns every
 * problem found (never throws). Unknown properties are allowed, as the spec
 * requires; a known property with the wrong type or value is a problem.
 */
export function validateSpec(value: unknown): SpecProblem[] {
  const p = new Problems();
  if (!isObject(value)) {
    p.add('', 'must be a JSON object');
    return p.list;
  }
  stringField(p, value, 'ociVersion', '', {
    required: true,
    pattern: SEMVER,
    patternText: 'is not a semantic version like "1.2.0"',
  });

  validateRoot(p, value);
  validateMounts(p, value);

  const proc = objectField(p, value, 'process', '');
  if (proc) validateProcess(p, proc, 'process');

  stringField(p, value, 'hostname', '');
  stringField(p, value, 'domainname', '');
  validateHooks(p, value);

  mapField(p, value, 'annotations', '', (v, path, key) => {
    if (key === '') p.add(path, 'annotation keys must not be empty');
    else if (typeof v !== 'string') p.add(path, 'must be a string');
  });

  const linux = objectField(p, value, 'linux', '');
  if (linux) validateLinux(p, linux, 'linux');

  for (const key of OTHER_PLATFORMS) objectField(p, value, key, '');
  return p.list;
}

function validateRoot(p: Problems, spec: JsonObject): void {
  // config.md: root is REQUIRED everywhere except Windows (Hyper-V must not set it)
  const root = objectField(p, spec, 'root', '', { required: spec['windows'] === undefined });
  if (!root) return;
  stringField(p, root, 'path', 'root', { required: true, nonEmpty: true });
  boolField(p, root, 'readonly', 'root');
}

function validateMounts(p: Problems, spec: JsonObject): void {
  arrayField(p, spec, 'mounts', '', (item, path) => {
    const m = asObject(p, item, path);
    if (!m) return;
    // a relative destination is deprecated but still valid on Linux (taken relative to "/"), as runc does
    stringField(p, m, 'destination', path, { required: true, nonEmpty: true });
    stringField(p, m, 'type', path);
    stringField(p, m, 'source', path);
    stringArrayField(p, m, 'options', path);
    const uid = validateIdMappings(p, m, 'uidMappings', path);
    const gid = validateIdMappings(p, m, 'gidMappings', path);
    if (uid !== gid && (m['uidMappings'] === undefined || m['gidMappings'] === undefined)) {
      const missing = uid ? 'gidMappings' : 'uidMappings';
      p.add(at(path, missing), `is required when ${uid ? 'uidMappings' : 'gidMappings'} is set`);
    }
  });
}

function validateHooks(p: Problems, spec: JsonObject): void {
  const hooks = objectField(p, spec, 'hooks', '');
  if (!hooks) return;
  for (const name of HOOK_NAMES) {
    arrayField(p, hooks, name, 'hooks', (item, path) => {
      const hook = asObject(p, item, path);
      if (!hook) return;
      stringField(p, hook, 'path', path, { required: true, absolute: true });
      stringArrayField(p, hook, 'args', path);
      stringArrayField(p, hook, 'env', path, ENV_ENTRY);
      intField(p, hook, 'timeout', path, 'int', { min: 1 });
    });
  }
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Credentials } from './auth.js';
import { ImageError, isErrno } from './errors.js';
import { envOf, homeOf, type RegistrySettings, systemPath } from './settings.js';

/** What the credential lookup may use beyond the registry settings. */
export interface CredentialOptions extends RegistrySettings {
  /** `--authfile`: this file only (auth.json or a Docker config.json); default `$REGISTRY_AUTH_FILE`, else the lookup order below */
  authFile?: string;
  /** registries.conf `credential-helpers`; default ['containers-auth.json'] (the auth files) */
  credentialHelpers?: string[];
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

/** auth.json for `berth login`: `--authfile`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, else /run/containers/UID/auth.json. */
export function defaultAuthFile(o: CredentialOptions = {}): string {
  if (o.authFile !== undefined) return o.authFile;
  const env = envOf(o);
  if (env['REGISTRY_AUTH_FILE']) return env['REGISTRY_AUTH_FILE'];
  if (env['XDG_RUNTIME_DIR']) return join(env['XDG_RUNTIME_DIR'], 'containers', 'auth.json');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return systemPath(o, `/run/containers/${uid}/auth.json`);
}

/**
 * The files credentials are read from, in order (containers-auth.json(5)): an explicit file alone; else
 * auth.json in $XDG_RUNTIME_DIR (or /run/containers/UID), $XDG_CONFIG_HOME/containers/auth.json, then Docker's
 * $DOCKER_CONFIG/config.json (or ~/.docker/config.json).
 */
export function authFiles(o: CredentialOptions = {}): string[] {
  const env = envOf(o);
  if (o.authFile !== undefined) return [o.authFile];
  if (env['REGISTRY_AUTH_FILE']) return [env['REGISTRY_AUTH_FILE']];
  const home = homeOf(o);
  const files = [defaultAuthFile(o)];
  files.push(join(env['XDG_CONFIG_HOME'] || join(home, '.config'), 'containers', 'auth.json'));
  files.push(
    env['DOCKER_CONFIG'] ? join(env['DOCKER_CONFIG'], 'config.json') : join(home, '.docker', 'config.json'),
  );
  return files;
}

async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw new ImageError('EAUTH', `cannot read credentials file ${file}`, {
      op: 'read auth file',
      path: file,
      cause: err,
    });
  }
  if (text.trim() === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ImageError('EAUTH', `credentials file ${file} is not valid json`, {
      op: 'read auth file',
      path: file,
      cause: err,
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ImageError('EAUTH', `credentials file ${file} must hold a JSON object`, {
      op: 'read auth file',
      path: file,
    });
  }
  return json as AuthFile;
}

/** A key as Docker or podman wrote it (`https://index.docker.io/v1/`, `http://host:5000`, `host/ns`) in podman's form. */
export function normalizeAuthKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//i, '');
  k = k.replace(/\/v[12]\/?$/, '').replace(/\/+$/, '');
  const slash = k.indexOf('/');
  const host = slash < 0 ? k : k.slice(0, slash);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io')
    k = `docker.io${slash < 0 ? '' : k.slice(slash)}`;
  return k;
}

/** Keys to look for, most specific first: registry/ns/repo, registry/ns, registry. */
function wantedKeys(registry: string, repository: string | undefined): string[] {
  const keys: string[] = [];
  if (repository !== undefined) {
    const parts = repository.split('/');
    for (let n = parts.length; n > 0; n--) keys.push(`${registry}/${parts.slice(0, n).join('/')}`);
  }
  keys.push(registry);
  return keys;
}

function decodeEntry(file: string, key: string, e: AuthEntry): Credentials | undefined {
  if (e.identitytoken)
    return { username: e.username ?? '', password: '', identityToken: e.identitytoken, source: file };
  if (e.username !== undefined && e.password !== undefined)
    return { username: e.username, password: e.password, source: file };
  if (e.auth !== undefined && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) {
      throw new ImageError(
        'EAUTH',
        `credentials file ${file}: auths.${JSON.stringify(key)}.auth is not base64 of user:password`,
        {
          op: 'read auth file',
          path: file,
        },
      );
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source: file };
  }
  return undefined;
}

/** The auths entry for registry/repository in one parsed file. */
function fromAuths(
  file: string,
  doc: AuthFile,
  registry: string,
  repository: string | undefined,
): Credentials | undefined {
  if (doc.auths === undefined) return undefined;
  const byNorm = new Map<string, [string, AuthEntry]>();
  for (const [k, v] of Object.entries(doc.auths)) {
    const n = normalizeAuthKey(k);
    // an exact podman-style key beats a legacy URL key that normalizes to the same thing
    if (!byNorm.has(n) || k === n) byNorm.set(n, [k, v]);
  }
  for (const key of wantedKeys(registry, repository)) {
    const hit = byNorm.get(key);
    if (hit === undefined) continue;
    const creds = decodeEntry(file, hit[0], hit[1]);
    if (creds !== undefined) return creds;
  }
  return undefined;
}

/** docker-credential-NAME ACTION with `input` on stdin (the credential helper protocol). */
export function runCredentialHelper(
  name: string,
  action: 'get' | 'store' | 'erase',
  input: string,
  o: RegistrySettings = {},
): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    return Promise.reject(
      new ImageError('EAUTH', `credential helper name ${JSON.stringify(name)} is not valid`, {
        op: 'credential helper',
      }),
    );
  }
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      [action],
      { env: envOf(o) as NodeJS.ProcessEnv, timeout: 60_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve(stdout);
          return;
        }
        const out = `${stdout}`.trim() || `${stderr}`.trim();
        if (isErrno(err, 'ENOENT')) {
          reject(
            new ImageError('EAUTH', `credential helper ${program} is not installed (not found in PATH)`, {
              op: 'credential helper',
              path: program,
              cause: err,
            }),
          );
        } else if (action === 'get' && /credentials not found/i.test(out)) {
          resolve('');
        } else {
          reject(
            new ImageError('EAUTH', `credential helper ${program} ${action} failed: ${out || err.message}`, {
              op: 'credential helper',
              path: program,
              cause: err,
            }),
          );
        }
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });
}

async function fromHelper(
  name: string,
  registry: string,
  o: RegistrySettings,
): Promise<Credentials | undefined> {
  const out = await runCredentialHelper(name, 'get', registry, o);
  if (out.trim() === '') return undefined;
  let json: { Username?: unknown; Secret?: unknown };
  try {
    json = JSON.parse(out) as typeof json;
  } catch (err) {
    throw new ImageError(
      'EAUTH',
      `credential helper docker-credential-${name} answered something that is not JSON`,
      {
        op: 'credential helper',
        path: `docker-credential-${name}`,
        cause: err,
      },
    );
  }
  if (typeof json.Username !== 'string' || typeof json.Secret !== 'string') {
    throw new ImageError(
      'EAUTH',
      `credential helper docker-credential-${name} answered without Username and Secret`,
      {
        op: 'credential helper',
        path: `docker-credential-${name}`,
      },
    );
  }
  const source = `docker-credential-${name}`;
  if (json.Username === '<token>') return { username: '', password: '', identityToken: json.Secret, source };
  return { username: json.Username, password: json.Secret, source };
}

/**
 * Credentials for `registry` (host[:port]) and optionally its repository, in the order podman and Docker use:
 * per file, `credHelpers[registry]`, then `auths` (most specific key first), then `credsStore`; the first file
 * that has an answer wins. Registries.conf `credential-helpers` may put helpers before or instead of the files.
 */
export async function findCredentials(
  registry: string,
  repository: string | undefined,
  o: CredentialOptions = {},
): Promise<Credentials | undefined> {
  const helpers = o.credentialHelpers ?? ['containers-auth.json'];
  for (const helper of helpers) {
    if (helper !== 'containers-auth.json') {
      const c = await fromHelper(helper, registry, o);
      if (c !== undefined) return c;
      continue;
    }
    for (const file of authFiles(o)) {
      const doc = await readAuthFile(file);
      if (doc === undefined) continue;
      const helperName = Object.entries(doc.credHelpers ?? {}).find(
        ([k]) => normalizeAuthKey(k) === registry,
      )?.[1];
      if (helperName !== undefined) {
        const c = await fromHelper(helperName, registry, o);
        if (c !== undefined) return c;
        continue;
      }
      const c = fromAuths(file, doc, registry, repository);
      if (c !== undefined) return c;
      if (doc.credsStore) {
        const s = await fromHelper(doc.credsStore, registry, o);
        if (s !== undefined) return s;
      }
    }
  }
  return undefined;
}

/** Writes JSON with mode 0600 (its directory 0700): a reader sees the old file or the new one. */
async function writeSecretFile(path: string, doc: AuthFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(doc, null, '\t')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new ImageError('EAUTH', `cannot write credentials file ${path}`, {
      op: 'write auth file',
      path,
      cause: err,
    });
  }
}

/**
 * Saves credentials for `key` (host[:port], or host/namespace for repository-scoped credentials): to the
 * file's credential helper when it names one for the host (credHelpers, credsStore), else into its `auths`.
 * Returns where they went.
 */
export async function saveCredentials(
  key: string,
  creds: Credentials,
  o: CredentialOptions = {},
): Promise<string> {
  const file = defaultAuthFile(o);
  const doc = (await readAuthFile(file)) ?? {};
  const host = key.split('/')[0]!;
  const helper =
    Object.entries(doc.credHelpers ?? {}).find(([k]) => normalizeAuthKey(k) === host)?.[1] ?? doc.credsStore;
  if (helper && key === host) {
    await runCredentialHelper(
      helper,
      'store',
      JSON.stringify({ ServerURL: host, Username: creds.username, Secret: creds.password }),
      o,
    );
    return `docker-credential-${helper}`;
  }
  const auths = { ...(doc.auths ?? {}) };
  for (const k of Object.keys(auths)) if (k !== key && normalizeAuthKey(k) === key) delete auths[k];
  auths[key] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') };
  await writeSecretFile(file, { ...doc, auths });
  return file;
}

/**
 * Removes the credentials saved for `key` (or every one with `all`). Throws ENOTFOUND-style EAUTH when there were
 * none, naming Docker's config.json when the credentials came from `docker login`.
 */
export async function removeCredentials(
  key: string | undefined,
  o: CredentialOptions & { all?: boolean } = {},
): Promise<string> {
  const file = defaultAuthFile(o);
  const doc = (await readAuthFile(file)) ?? {};
  if (o.all === true) {
    if (doc.auths !== undefined && Object.keys(doc.auths).length > 0)
      await writeSecretFile(file, { ...doc, auths: {} });
    return file;
  }
  if (key === undefined) throw new ImageError('EAUTH', 'logout needs a registry or all', { op: 'logout' });
  const host = key.split('/')[0]!;
  const helper =
    Object.entries(doc.credHelpers ?? {}).find(([k]) => normalizeAuthKey(k) === host)?.[1] ?? doc.credsStore;
  if (helper && key === host) {
    await runCredentialHelper(helper, 'erase', host, o);
    return `docker-credential-${helper}`;
  }
  const auths = { ...(doc.auths ?? {}) };
  const keys = Object.keys(auths).filter((k) => normalizeAuthKey(k) === key);
  if (keys.length === 0) {
    const elsewhere =
      o.authFile === undefined && !envOf(o)['REGISTRY_AUTH_FILE'] ? authFiles(o).slice(1) : [];
    for (const other of elsewhere) {
      const d = await readAuthFile(other);
      if (
        d !== undefined &&
        fromAuths(other, d, host, key.includes('/') ? key.slice(host.length + 1) : undefined)
      ) {
        throw new ImageError(
          'EAUTH',
          `not logged into ${key} in ${file}: the credentials for it are in ${other} (remove them there, or with docker logout)`,
          {
            op: 'logout',
            path: other,
          },
        );
      }
    }
    throw new ImageError('EAUTH', `not logged into ${key} (nothing for it in ${file})`, {
      op: 'logout',
      path: file,
    });
  }
  for (const k of keys) delete auths[k];
  await writeSecretFile(file, { ...doc, auths });
  return file;
}

// Integration: berth login / logout / pull against a TLS registry with a self-signed CA and basic auth, on
// 127.0.0.1. Every setting lives under a temp BERTH_CONFIG_ROOT and HOME: the host's /etc is never touched.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTlsSettings, RegistryClient } from '../../../packages/image/src/index.js';
import {
  buildTestLayers,
  type PushedImage,
  pushTestImage,
  randomName,
} from '../../../packages/image/test/helpers/image.js';
import {
  makeTestPki,
  type StartedRegistry,
  startRegistry,
  type TestPki,
} from '../../../packages/image/test/helpers/registry.js';
import { CLI } from './helpers.js';
import { oneLineError } from './images-helpers.js';

const dirs: string[] = [];
function temp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

const user = { username: 'dave', password: `pw-${Math.random().toString(36).slice(2)}` };
let pki: TestPki;
let registry: StartedRegistry;
let image: PushedImage;

beforeAll(async () => {
  pki = makeTestPki();
  dirs.push(pki.dir);
  registry = await startRegistry({ basic: user, tls: { cert: pki.serverCert, key: pki.serverKey } });
  const certDir = temp('berth-certdir-');
  copyFileSync(pki.ca, join(certDir, 'ca.crt'));
  const client = new RegistryClient({
    registry: registry.host,
    credentials: user,
    tls: await loadTlsSettings(registry.host, { certDir }, false),
  });
  image = await pushTestImage(client, randomName('berth/login'), 'v1', (await buildTestLayers()).slice(0, 1));
});
afterAll(async () => {
  await registry.stop();
  expect(() => process.kill(registry.pid, 0)).toThrow();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const d of dirs) expect(existsSync(d)).toBe(false);
});

/** A machine of its own: config root (stands for /), HOME, runtime dir and image store, all empty. */
function machine(options: { ca?: boolean } = {}) {
  const root = temp('berth-root-');
  const home = temp('berth-home-');
  const store = temp('berth-store-');
  if (options.ca !== false) {
    mkdirSync(join(root, 'etc/containers/certs.d', registry.host), { recursive: true });
    copyFileSync(pki.ca, join(root, 'etc/containers/certs.d', registry.host, 'ca.crt'));
  }
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: home,
    BERTH_CONFIG_ROOT: root,
    BERTH_STORE: store,
    XDG_RUNTIME_DIR: join(root, 'run/user/0'),
  };
  const berth = (
    args: string[],
    input?: string,
    extra: Record<string, string> = {},
  ): SpawnSyncReturns<string> =>
    spawnSync(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      env: { ...env, ...extra },
      ...(input !== undefined ? { input } : { stdio: ['ignore', 'pipe', 'pipe'] }),
      timeout: 60_000,
    });
  return { root, home, store, env, berth, authFile: join(root, 'run/user/0/containers/auth.json') };
}

describe('berth login, pull and logout over TLS with basic auth', () => {
  it('login refuses wrong credentials and saves nothing; right ones are saved 0600 and used by pull', () => {
    const m = machine();
    const wrong = m.berth(['login', '-u', user.username, '--password-stdin', registry.host], 'nope\n');
    expect(oneLineError(wrong)).toBe(`berth: registry ${registry.host} rejected the credentials of dave`);
    expect(existsSync(m.authFile)).toBe(false);

    const ok = m.berth(
      ['login', '-u', user.username, '--password-stdin', registry.host],
      `${user.password}\n`,
    );
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('Login Succeeded!\n');
    expect(ok.status).toBe(0);
    expect(statSync(m.authFile).mode & 0o777).toBe(0o600);
    expect(m.berth(['login', '--get-login', registry.host]).stdout).toBe('dave\n');

    const pull = m.berth(['pull', '-q', image.ref]);
    expect(pull.stderr).toBe('');
    expect(pull.stdout).toBe(`${image.manifestDigest}\n`);

    const out = m.berth(['logout', registry.host]);
    expect(out.stdout).toBe(`Removed login credentials for ${registry.host}\n`);
    expect(JSON.parse(readFileSync(m.authFile, 'utf8'))).toEqual({ auths: {} });
    rmSync(m.store, { recursive: true, force: true });
    const denied = m.berth(['pull', '-q', image.ref]);
    expect(oneLineError(denied)).toBe(
      `berth: registry ${registry.host} requires authentication and berth has no credentials for it: log in with "berth login ${registry.host}" (or pass --creds USER:PASSWORD or --authfile FILE)`,
    );
    expect(oneLineError(m.berth(['logout', registry.host]))).toBe(
      `berth: not logged into ${registry.host} (nothing for it in ${m.authFile})`,
    );
  });

  it('without the CA: a pull says where the CA goes; --tls-verify=false and --cert-dir both work', () => {
    const m = machine({ ca: false });
    const creds = `${user.username}:${user.password}`;
    const failed = m.berth(['pull', '-q', '--creds', creds, image.ref]);
    expect(oneLineError(failed)).toBe(
      `berth: registry ${registry.host} at https://${registry.host}/v2/: its certificate is signed by a CA that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE): put the registry's CA certificate in ${join(m.root, 'etc/containers/certs.d', registry.host, 'ca.crt')} (or a directory given with --cert-dir), or use --tls-verify=false if you trust the network`,
    );
    const insecure = m.berth(['pull', '-q', '--tls-verify=false', '--creds', creds, image.ref]);
    expect(insecure.stderr).toBe('');
    expect(insecure.stdout).toBe(`${image.manifestDigest}\n`);

    const other = machine({ ca: false });
    const certDir = temp('berth-certdir-');
    copyFileSync(pki.ca, join(certDir, 'ca.crt'));
    const withDir = other.berth(['pull', '-q', '--cert-dir', certDir, '--creds', creds, image.ref]);
    expect(withDir.stderr).toBe('');
    expect(withDir.stdout).toBe(`${image.manifestDigest}\n`);
  });

  it('a credential helper named in Docker config.json answers for the registry', () => {
    const m = machine();
    const bin = temp('berth-bin-');
    writeFileSync(
      join(bin, 'docker-credential-berthcli'),
      `#!/bin/sh\nread server\n[ "$1" = get ] && [ "$server" = "${registry.host}" ] && printf '{"Username":"dave","Secret":"${user.password}"}' && exit 0\necho "credentials not found in native keychain"; exit 1\n`,
      { mode: 0o755 },
    );
    const dockerDir = join(m.home, '.docker');
    mkdirSync(dockerDir);
    writeFileSync(
      join(dockerDir, 'config.json'),
      JSON.stringify({ credHelpers: { [registry.host]: 'berthcli' } }),
    );
    const pull = m.berth(['pull', '-q', image.ref], undefined, { PATH: `${bin}:${m.env['PATH']}` });
    expect(pull.stderr).toBe('');
    expect(pull.stdout).toBe(`${image.manifestDigest}\n`);
  });

  it('a short name resolves through an alias in registries.conf.d', () => {
    const m = machine();
    mkdirSync(join(m.root, 'etc/containers/registries.conf.d'), { recursive: true });
    writeFileSync(
      join(m.root, 'etc/containers/registries.conf.d/10-app.conf'),
      `[aliases]\n"myapp" = "${registry.host}/${image.repository}"\n`,
    );
    const pull = m.berth(['pull', '-q', '--creds', `${user.username}:${user.password}`, 'myapp:v1']);
    expect(pull.stderr).toBe('');
    expect(pull.stdout).toBe(`${image.manifestDigest}\n`);
    const listed = JSON.parse(m.berth(['images', '--format', 'json']).stdout) as { name: string }[];
    expect(listed.map((i) => i.name)).toEqual([image.ref]);
  });
});

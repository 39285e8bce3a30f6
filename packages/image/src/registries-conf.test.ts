// Unit: registries.conf parsing and merging, short-name resolution, mirror order, auth keys. No root, no network.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { authFiles, defaultAuthFile, findCredentials, normalizeAuthKey } from './credentials.js';
import { ImageError } from './errors.js';
import { parseReference } from './reference.js';
import {
  emptyRegistriesConfig,
  findRegistry,
  isShortName,
  loadRegistriesConfig,
  parseRegistriesConfig,
  pullEndpoints,
  resolveShortName,
} from './registries-conf.js';
import { certsDirs } from './settings.js';
import { loadTlsSettings } from './tls.js';

const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'berth-conf-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function errorOf(p: Promise<unknown>): Promise<ImageError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(e instanceof ImageError)) throw new Error(`expected an ImageError, got ${String(e)}`);
  return e;
}

const names = (c: ReturnType<typeof resolveShortName>) =>
  c.candidates.map(
    (r) => `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`,
  );

describe('short names', () => {
  it('tells short names from qualified ones', () => {
    expect(isShortName('busybox')).toBe(true);
    expect(isShortName('org/app:1')).toBe(true);
    expect(isShortName('quay.io/org/app')).toBe(false);
    expect(isShortName('localhost/app')).toBe(false);
    expect(isShortName('host:5000/app')).toBe(false);
  });

  it('with nothing configured, busybox means docker.io/library/busybox as in Docker', () => {
    const r = resolveShortName(emptyRegistriesConfig(), 'busybox');
    expect(r.via).toBe('default');
    expect(names(r)).toEqual(['docker.io/library/busybox:latest']);
  });

  it('an alias wins over the search list and keeps the tag or digest', async () => {
    const c = await parseRegistriesConfig(`
unqualified-search-registries = ["quay.io", "docker.io"]
[aliases]
"app" = "registry.example/team/app"
"ubi8/ubi" = "registry.example/ubi8"
`);
    expect(names(resolveShortName(c, 'app:2'))).toEqual(['registry.example/team/app:2']);
    expect(names(resolveShortName(c, 'ubi8/ubi'))).toEqual(['registry.example/ubi8:latest']);
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(names(resolveShortName(c, `app@${digest}`))).toEqual([`registry.example/team/app@${digest}`]);
    expect(names(resolveShortName(c, 'busybox'))).toEqual([
      'quay.io/busybox:latest',
      'docker.io/library/busybox:latest',
    ]);
    expect(names(resolveShortName(c, 'quay.io/x/y'))).toEqual(['quay.io/x/y:latest']);
  });

  it('short-name-mode: enforcing refuses more than one candidate (no prompt); disabled ignores aliases', async () => {
    const enforcing = await parseRegistriesConfig(
      `unqualified-search-registries = ["a.example", "b.example"]\nshort-name-mode = "enforcing"\n`,
    );
    expect(() => resolveShortName(enforcing, 'app')).toThrow(/ambiguous.*a\.example, b\.example/);
    const one = await parseRegistriesConfig(
      `unqualified-search-registries = ["a.example"]\nshort-name-mode = "enforcing"\n`,
    );
    expect(names(resolveShortName(one, 'app'))).toEqual(['a.example/app:latest']);
    const disabled = await parseRegistriesConfig(
      `unqualified-search-registries = ["a.example"]\nshort-name-mode = "disabled"\n[aliases]\n"app" = "b.example/app"\n`,
    );
    expect(names(resolveShortName(disabled, 'app'))).toEqual(['a.example/app:latest']);
  });
});

describe('[[registry]] tables', () => {
  it('picks the longest prefix, rewrites to location, and orders mirrors before the primary', async () => {
    const c = await parseRegistriesConfig(`
[[registry]]
location = "example.com"
insecure = true
[[registry]]
prefix = "example.com/foo"
location = "internal.example/bar"
[[registry.mirror]]
location = "mirror-0.local/mirror-for-foo"
[[registry.mirror]]
location = "mirror-1.local/mirrors/foo"
insecure = true
pull-from-mirror = "tag-only"
`);
    expect(findRegistry(c, parseReference('example.com/foo/app'))?.prefix).toBe('example.com/foo');
    expect(findRegistry(c, parseReference('example.com/foobar/app'))?.prefix).toBe('example.com');
    const e = pullEndpoints(c, parseReference('example.com/foo/image:latest'));
    expect(e.map((x) => [x.ref.registry, x.ref.repository, x.ref.tag, x.insecure, x.mirror])).toEqual([
      ['mirror-0.local', 'mirror-for-foo/image', 'latest', false, true],
      ['mirror-1.local', 'mirrors/foo/image', 'latest', true, true],
      ['internal.example', 'bar/image', 'latest', false, false],
    ]);
    const digest = `sha256:${'b'.repeat(64)}`;
    const byDigest = pullEndpoints(c, parseReference(`example.com/foo/image@${digest}`));
    expect(byDigest.map((x) => x.ref.registry)).toEqual(['mirror-0.local', 'internal.example']);
    expect(pullEndpoints(c, parseReference('example.com/other'))[0]).toMatchObject({
      insecure: true,
      mirror: false,
    });
    expect(pullEndpoints(c, parseReference('quay.io/x'), true)).toEqual([
      { ref: parseReference('quay.io/x'), insecure: true, mirror: false },
    ]);
  });

  it('mirror-by-digest-only keeps tags on the primary; a wildcard prefix matches subdomains; blocked is an error', async () => {
    const c = await parseRegistriesConfig(`
[[registry]]
location = "docker.io/library"
mirror-by-digest-only = true
[[registry.mirror]]
location = "cache.local/library"
[[registry]]
prefix = "*.corp.example"
blocked = true
`);
    expect(pullEndpoints(c, parseReference('busybox')).map((x) => x.ref.registry)).toEqual(['docker.io']);
    expect(
      pullEndpoints(c, parseReference(`busybox@sha256:${'c'.repeat(64)}`)).map((x) => x.ref.registry),
    ).toEqual(['cache.local', 'docker.io']);
    expect(() => pullEndpoints(c, parseReference('reg.corp.example/x'))).toThrow(
      /is blocked by \[\[registry\]\] prefix="\*\.corp\.example"/,
    );
    expect(pullEndpoints(c, parseReference('corp.example.org/x'))).toHaveLength(1);
  });

  it('names the file and the key of every mistake', async () => {
    const cases: [string, RegExp][] = [
      [
        '[[registry]]\nprefix = "x.example"\n',
        /registry\[0\]\.location is needed unless the prefix is a \*\.domain wildcard/,
      ],
      [
        '[[registry]]\nlocation = "https://x.example"\n',
        /registry\[0\]\.prefix "https:\/\/x\.example" must not have a scheme/,
      ],
      [
        '[[registry]]\nlocation = "x.example"\nblocked = "yes"\n',
        /registry\[0\]\.blocked must be true or false/,
      ],
      [
        '[[registry]]\nlocation = "x.example"\n[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "some"\n',
        /registry\[0\]\.mirror\[0\]\.pull-from-mirror must be all, digest-only or tag-only/,
      ],
      [
        '[[registry]]\nlocation = "x.example"\n[[registry]]\nlocation = "x.example"\n',
        /registry\[1\]\.prefix "x\.example" is defined twice/,
      ],
      ['[registries.search]\nregistries = ["a.example"]\n', /version 1 format/],
      ['short-name-mode = "strict"\n', /short-name-mode must be enforcing, permissive or disabled/],
      ['[aliases]\n"quay.io/app" = "quay.io/app"\n', /aliases\."quay\.io\/app" must be a short name/],
      ['[aliases]\n"app" = "app2"\n', /must be a fully-qualified name/],
      ['[aliases]\n"app" = "quay.io/app:1"\n', /must not have a tag or digest/],
      ['unqualified-search-registries = ["a.example/ns"]\n', /must be host\[:port\] without a namespace/],
      ['mirrors = true\n', /mirrors is not a registries\.conf setting berth knows/],
      ['[[registry]\n', /is not valid TOML/],
    ];
    for (const [text, want] of cases) {
      const err = await errorOf(parseRegistriesConfig(text, '/etc/containers/registries.conf'));
      expect(err.code).toBe('ECONFIG');
      expect(err.message).toMatch(/^\/etc\/containers\/registries\.conf/);
      expect(err.message).toMatch(want);
    }
  });
});

describe('where registries.conf is read from', () => {
  it('main file, then registries.conf.d/*.conf in name order; later files win', async () => {
    const root = temp();
    mkdirSync(join(root, 'etc/containers/registries.conf.d'), { recursive: true });
    writeFileSync(
      join(root, 'etc/containers/registries.conf'),
      'unqualified-search-registries = ["a.example"]\n[aliases]\n"x" = "a.example/x"\n"y" = "a.example/y"\n[[registry]]\nlocation = "a.example"\n',
    );
    writeFileSync(
      join(root, 'etc/containers/registries.conf.d/20-b.conf'),
      '[aliases]\n"x" = "b.example/x"\n"y" = ""\n[[registry]]\nlocation = "a.example"\ninsecure = true\n',
    );
    writeFileSync(
      join(root, 'etc/containers/registries.conf.d/10-c.conf'),
      'unqualified-search-registries = ["c.example"]\n',
    );
    writeFileSync(join(root, 'etc/containers/registries.conf.d/README'), 'not a conf file');
    const c = await loadRegistriesConfig({ configRoot: root, env: { HOME: temp() } });
    expect(c.files.map((f) => f.slice(root.length))).toEqual([
      '/etc/containers/registries.conf',
      '/etc/containers/registries.conf.d/10-c.conf',
      '/etc/containers/registries.conf.d/20-b.conf',
    ]);
    expect(c.unqualifiedSearchRegistries).toEqual(['c.example']);
    expect(c.aliases).toEqual({ x: 'b.example/x' });
    expect(c.registries).toHaveLength(1);
    expect(c.registries[0]).toMatchObject({ prefix: 'a.example', insecure: true });
  });

  it('CONTAINERS_REGISTRIES_CONF names the file (it must exist); with no file nothing is configured', async () => {
    const root = temp();
    const file = join(root, 'mine.conf');
    writeFileSync(file, 'unqualified-search-registries = ["m.example"]\n');
    const env = { HOME: temp(), CONTAINERS_REGISTRIES_CONF: file };
    expect((await loadRegistriesConfig({ configRoot: root, env })).unqualifiedSearchRegistries).toEqual([
      'm.example',
    ]);
    const missing = await errorOf(
      loadRegistriesConfig({
        configRoot: root,
        env: { ...env, CONTAINERS_REGISTRIES_CONF: join(root, 'nope') },
      }),
    );
    expect(missing.message).toBe(`registries.conf ${join(root, 'nope')} does not exist`);
    expect(await loadRegistriesConfig({ configRoot: temp(), env: { HOME: temp() } })).toEqual(
      emptyRegistriesConfig(),
    );
  });
});

describe('certs.d', () => {
  it('looks in containers then docker certs.d, under configRoot; --cert-dir replaces the lookup', async () => {
    const root = temp();
    expect(certsDirs({ configRoot: root, env: {} }).slice(-2)).toEqual([
      join(root, 'etc/containers/certs.d'),
      join(root, 'etc/docker/certs.d'),
    ]);
    const d = join(root, 'etc/docker/certs.d/reg.example:5000');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'ca.crt'), 'CA PEM');
    writeFileSync(join(d, 'me.cert'), 'CERT PEM');
    writeFileSync(join(d, 'me.key'), 'KEY PEM');
    const t = await loadTlsSettings('reg.example:5000', { configRoot: root, env: {} }, false);
    expect(t).toMatchObject({
      verify: true,
      ca: ['CA PEM'],
      cert: 'CERT PEM',
      key: 'KEY PEM',
      dir: d,
      hintDir: d,
    });
    const other = await loadTlsSettings('other.example', { configRoot: root, env: {} }, false);
    expect(other).toMatchObject({ ca: [], hintDir: join(root, 'etc/containers/certs.d/other.example') });
    expect((await loadTlsSettings('x', { tlsVerify: false, certsDirs: [] }, false)).verify).toBe(false);
    const err = await errorOf(loadTlsSettings('x', { certDir: join(root, 'nope') }, false));
    expect(err.message).toBe(`--cert-dir ${join(root, 'nope')} does not exist`);
    writeFileSync(join(d, 'lonely.key'), 'KEY');
    const lonely = await errorOf(loadTlsSettings('reg.example:5000', { configRoot: root, env: {} }, false));
    expect(lonely.message).toBe(
      `client key ${join(d, 'lonely.key')} has no certificate: expected ${join(d, 'lonely.cert')}`,
    );
  });
});

describe('credentials lookup', () => {
  it('normalizes the keys Docker and podman write', () => {
    expect(normalizeAuthKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normalizeAuthKey('http://reg.example:5000')).toBe('reg.example:5000');
    expect(normalizeAuthKey('reg.example/ns/repo')).toBe('reg.example/ns/repo');
    expect(normalizeAuthKey('https://reg.example/v2/')).toBe('reg.example');
  });

  it('auth.json in XDG_RUNTIME_DIR, then ~/.config/containers, then Docker; REGISTRY_AUTH_FILE alone', async () => {
    const home = temp();
    const run = temp();
    const env = { HOME: home, XDG_RUNTIME_DIR: run };
    expect(authFiles({ env })).toEqual([
      join(run, 'containers/auth.json'),
      join(home, '.config/containers/auth.json'),
      join(home, '.docker/config.json'),
    ]);
    expect(authFiles({ env: { ...env, REGISTRY_AUTH_FILE: '/x.json' } })).toEqual(['/x.json']);
    expect(defaultAuthFile({ env: { HOME: home }, configRoot: '/r' })).toMatch(
      /^\/r\/run\/containers\/\d+\/auth\.json$/,
    );

    const b64 = (s: string) => Buffer.from(s).toString('base64');
    mkdirSync(join(home, '.docker'));
    writeFileSync(
      join(home, '.docker/config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub:1') },
          'reg.example': { auth: b64('docker:2') },
        },
      }),
    );
    mkdirSync(join(run, 'containers'));
    writeFileSync(
      join(run, 'containers/auth.json'),
      JSON.stringify({
        auths: { 'reg.example/team': { auth: b64('team:3') }, 'other.example': { auth: b64('podman:4') } },
      }),
    );
    expect(await findCredentials('docker.io', 'library/busybox', { env })).toMatchObject({
      username: 'hub',
      password: '1',
    });
    expect(await findCredentials('reg.example', 'team/app', { env })).toMatchObject({
      username: 'team',
      password: '3',
    });
    expect(await findCredentials('reg.example', 'solo/app', { env })).toMatchObject({
      username: 'docker',
      password: '2',
    });
    expect(await findCredentials('other.example', 'x', { env })).toMatchObject({
      username: 'podman',
      source: join(run, 'containers/auth.json'),
    });
    expect(await findCredentials('none.example', 'x', { env })).toBeUndefined();
    writeFileSync(join(run, 'containers/auth.json'), '{"auths": {"bad.example": {"auth": "bm9jb2xvbg=="}}}');
    const bad = await errorOf(findCredentials('bad.example', undefined, { env }));
    expect(bad.message).toBe(
      `credentials file ${join(run, 'containers/auth.json')}: auths."bad.example".auth is not base64 of user:password`,
    );
  });
});

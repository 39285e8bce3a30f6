// Integration: registries as users configure them (TLS and certs.d, mutual TLS, registries.conf mirrors,
// blocks and aliases, auth files and credential helpers, token auth), against Debian's docker-registry on
// 127.0.0.1. Nothing here reads or writes /etc: every lookup goes under a temp configRoot and a temp HOME.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findCredentials,
  ImageError,
  ImageStore,
  loadTlsSettings,
  type PullOptions,
  RegistryClient,
  type RegistrySettings,
  removeCredentials,
  saveCredentials,
} from '../src/index.js';
import {
  buildTestLayers,
  type PushedImage,
  pushTestImage,
  randomName,
  type TestLayer,
} from './helpers/image.js';
import { makeTestPki, type StartedRegistry, startRegistry, type TestPki } from './helpers/registry.js';

const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = join(tmpdir(), `${prefix}${Math.random().toString(36).slice(2, 10)}`);
  mkdirSync(dir, { recursive: true });
  tempDirs.push(dir);
  return dir;
}
async function tempStore(): Promise<ImageStore> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-store-'));
  tempDirs.push(dir);
  return ImageStore.open(dir);
}
function blobCount(store: ImageStore): number {
  return readdirSync(join(store.root, 'blobs', 'sha256')).length;
}

/** A configRoot (stands in for /) and a HOME, both empty: berth sees no host configuration at all. */
function isolated(): RegistrySettings & { root: string; home: string } {
  const root = tempDir('berth-root-');
  const home = tempDir('berth-home-');
  return {
    root,
    home,
    configRoot: root,
    env: { HOME: home, PATH: process.env['PATH'] },
  };
}

function put(path: string, text: string, mode = 0o644): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text, { mode });
  return path;
}

async function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 1));
    });
  });
}

/** Stops a test registry and checks that its process and directory are gone. */
async function stopped(r: StartedRegistry): Promise<void> {
  await r.stop();
  expect(() => process.kill(r.pid, 0)).toThrow();
  expect(existsSync(r.dir)).toBe(false);
}

async function failure(p: Promise<unknown>): Promise<ImageError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ImageError)) throw new Error(`expected an ImageError, got ${String(err)}`);
  return err;
}

let layers: TestLayer[];
let pki: TestPki;
beforeAll(async () => {
  layers = await buildTestLayers();
  pki = makeTestPki();
  tempDirs.push(pki.dir);
});
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  for (const d of tempDirs) expect(existsSync(d)).toBe(false);
});

/** TLS settings that trust the test CA, for pushing test images. */
async function trusting(host: string, withClient = false) {
  const dir = tempDir('berth-certdir-');
  copyFileSync(pki.ca, join(dir, 'ca.crt'));
  if (withClient) {
    copyFileSync(pki.clientCert, join(dir, 'client.cert'));
    copyFileSync(pki.clientKey, join(dir, 'client.key'));
  }
  return loadTlsSettings(host, { certDir: dir }, false);
}

describe('a TLS registry with a self-signed CA', () => {
  let registry: StartedRegistry;
  let image: PushedImage;
  beforeAll(async () => {
    registry = await startRegistry({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    const client = new RegistryClient({ registry: registry.host, tls: await trusting(registry.host) });
    image = await pushTestImage(client, randomName('berth/tls'), 'v1', layers);
  });
  afterAll(async () => {
    await stopped(registry);
  });

  it('pulls with the CA in /etc/containers/certs.d/HOST:PORT/ca.crt', async () => {
    const s = isolated();
    put(join(s.root, 'etc/containers/certs.d', registry.host, 'ca.crt'), readFileSync(pki.ca, 'utf8'));
    const store = await tempStore();
    const record = await store.pull(image.ref, s);
    expect(record.digest).toBe(image.manifestDigest);
    expect(record.layers.map((l) => l.digest)).toEqual(layers.map((l) => l.digest));
  });

  it("falls back to Docker's /etc/docker/certs.d", async () => {
    const s = isolated();
    put(join(s.root, 'etc/docker/certs.d', registry.host, 'ca.crt'), readFileSync(pki.ca, 'utf8'));
    const store = await tempStore();
    expect((await store.pull(image.ref, s)).digest).toBe(image.manifestDigest);
  });

  it('without the CA fails saying where the CA goes and about --tls-verify=false, and stores nothing', async () => {
    const s = isolated();
    const store = await tempStore();
    const err = await failure(store.pull(image.ref, s));
    expect(err.code).toBe('ETLS');
    expect(err.errno).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(err.message).toBe(
      `registry ${registry.host} at https://${registry.host}/v2/: its certificate is signed by a CA that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE): put the registry's CA certificate in ${join(s.root, 'etc/containers/certs.d', registry.host, 'ca.crt')} (or a directory given with --cert-dir), or use --tls-verify=false if you trust the network`,
    );
    expect(blobCount(store)).toBe(0);
    expect(await store.list()).toEqual([]);
  });

  it('pulls with tlsVerify: false (and insecure: true, its synonym)', async () => {
    const a = await tempStore();
    expect((await a.pull(image.ref, { ...isolated(), tlsVerify: false })).digest).toBe(image.manifestDigest);
    const b = await tempStore();
    expect((await b.pull(image.ref, { ...isolated(), insecure: true })).digest).toBe(image.manifestDigest);
  });

  it('pulls with --cert-dir, which replaces the certs.d lookup', async () => {
    const s = isolated();
    const dir = tempDir('berth-certdir-');
    copyFileSync(pki.ca, join(dir, 'ca.crt'));
    const store = await tempStore();
    expect((await store.pull(image.ref, { ...s, certDir: dir })).digest).toBe(image.manifestDigest);
    const empty = tempDir('berth-certdir-');
    const err = await failure((await tempStore()).pull(image.ref, { ...s, certDir: empty }));
    expect(err.code).toBe('ETLS');
    expect(err.message).toContain(`put the registry's CA certificate in ${join(empty, 'ca.crt')}`);
  });
});

describe('mutual TLS', () => {
  let registry: StartedRegistry;
  let image: PushedImage;
  beforeAll(async () => {
    registry = await startRegistry({ tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca } });
    const client = new RegistryClient({ registry: registry.host, tls: await trusting(registry.host, true) });
    image = await pushTestImage(client, randomName('berth/mtls'), 'v1', layers.slice(0, 1));
  });
  afterAll(async () => {
    await stopped(registry);
  });

  it('presents the client certificate from certs.d (*.cert + *.key)', async () => {
    const s = isolated();
    const dir = join(s.root, 'etc/containers/certs.d', registry.host);
    put(join(dir, 'ca.crt'), readFileSync(pki.ca, 'utf8'));
    put(join(dir, 'client.cert'), readFileSync(pki.clientCert, 'utf8'));
    put(join(dir, 'client.key'), readFileSync(pki.clientKey, 'utf8'), 0o600);
    const store = await tempStore();
    expect((await store.pull(image.ref, s)).digest).toBe(image.manifestDigest);
  });

  it('is refused by the registry without a client certificate', async () => {
    const s = isolated();
    put(join(s.root, 'etc/containers/certs.d', registry.host, 'ca.crt'), readFileSync(pki.ca, 'utf8'));
    const store = await tempStore();
    const err = await failure(store.pull(image.ref, s));
    expect(err.code).toBe('ETLS');
    expect(err.message).toBe(
      `registry ${registry.host} at https://${registry.host}/v2/ asks for a client certificate: put it and its key in ${join(s.root, 'etc/containers/certs.d', registry.host, 'client.cert')} and ${join(s.root, 'etc/containers/certs.d', registry.host, 'client.key')} (or in a directory given with --cert-dir)`,
    );
    expect(await store.list()).toEqual([]);
  });

  it('a client certificate without its key is a configuration error naming the missing file', async () => {
    const s = isolated();
    const dir = join(s.root, 'etc/containers/certs.d', registry.host);
    put(join(dir, 'ca.crt'), readFileSync(pki.ca, 'utf8'));
    put(join(dir, 'client.cert'), readFileSync(pki.clientCert, 'utf8'));
    const err = await failure((await tempStore()).pull(image.ref, s));
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toBe(
      `client certificate ${join(dir, 'client.cert')} has no key: expected ${join(dir, 'client.key')}`,
    );
  });
});

describe('registries.conf: mirrors, blocked registries, aliases, search registries', () => {
  let origin: StartedRegistry;
  let mirror: StartedRegistry;
  let fromOrigin: PushedImage;
  let fromMirror: PushedImage;
  beforeAll(async () => {
    [origin, mirror] = await Promise.all([startRegistry(), startRegistry()]);
    // different content at the two places, so a test can tell which one served
    fromOrigin = await pushTestImage(
      new RegistryClient({ registry: origin.host }),
      'team/app',
      'v1',
      layers.slice(0, 1),
    );
    fromMirror = await pushTestImage(
      new RegistryClient({ registry: mirror.host }),
      'cache/team/app',
      'v1',
      layers.slice(0, 2),
    );
  });
  afterAll(async () => {
    await Promise.all([stopped(origin), stopped(mirror)]);
  });

  function conf(text: string): PullOptions {
    const s = isolated();
    put(join(s.root, 'etc/containers/registries.conf'), text);
    return s;
  }

  it('pulls from a mirror that has the image, under the name the user asked for', async () => {
    const s = conf(`
[[registry]]
prefix = "example.test/team"
location = "${origin.host}/team"
[[registry.mirror]]
location = "${mirror.host}/cache/team"
`);
    const store = await tempStore();
    const record = await store.pull('example.test/team/app:v1', s);
    expect(record.digest).toBe(fromMirror.manifestDigest);
    expect(record.name).toBe('example.test/team/app:v1');
    expect(record.repository).toBe('example.test/team/app');
  });

  it('reaches the origin when the mirror is down', async () => {
    const s = conf(`
[[registry]]
prefix = "example.test/team"
location = "${origin.host}/team"
[[registry.mirror]]
location = "127.0.0.1:${await deadPort()}/cache/team"
`);
    const store = await tempStore();
    const record = await store.pull('example.test/team/app:v1', s);
    expect(record.digest).toBe(fromOrigin.manifestDigest);
  });

  it('skips a digest-only mirror for a tag, and uses it for a digest', async () => {
    const s = conf(`
[[registry]]
location = "${origin.host}"
[[registry.mirror]]
location = "${mirror.host}/cache"
pull-from-mirror = "digest-only"
`);
    const byTag = await (await tempStore()).pull(`${origin.host}/team/app:v1`, s);
    expect(byTag.digest).toBe(fromOrigin.manifestDigest);
    // the mirror's manifest, asked for by digest under the origin's name: only the mirror has it
    const byDigest = await (await tempStore()).pull(
      `${origin.host}/team/app@${fromMirror.manifestDigest}`,
      s,
    );
    expect(byDigest.digest).toBe(fromMirror.manifestDigest);
  });

  it('refuses a blocked registry without contacting it, naming the file', async () => {
    const s = conf(`
[[registry]]
prefix = "${origin.host}/team"
location = "${origin.host}/team"
blocked = true
`);
    const store = await tempStore();
    const err = await failure(store.pull(`${origin.host}/team/app:v1`, s));
    expect(err.code).toBe('EBLOCKED');
    expect(err.message).toBe(
      `registry ${origin.host}/team/app is blocked by [[registry]] prefix="${origin.host}/team" in ${join(s.configRoot!, 'etc/containers/registries.conf')}`,
    );
    expect(blobCount(store)).toBe(0);
  });

  it('resolves a short name through an alias (a drop-in overrides the main file)', async () => {
    const s = conf(`
[aliases]
"myapp" = "example.test/nowhere/app"
`);
    put(
      join(s.configRoot!, 'etc/containers/registries.conf.d/50-team.conf'),
      `[aliases]\n"myapp" = "${origin.host}/team/app"\n`,
    );
    const store = await tempStore();
    expect(await store.resolve('myapp:v1', s)).toBeUndefined();
    const record = await store.pull('myapp:v1', s);
    expect(record.digest).toBe(fromOrigin.manifestDigest);
    expect(record.name).toBe(`${origin.host}/team/app:v1`);
    // found again locally through the same alias, without a pull
    expect((await store.resolve('myapp:v1', s))?.digest).toBe(fromOrigin.manifestDigest);
    expect(await store.get('myapp:v1')).toBeUndefined();
  });

  it('tries unqualified-search-registries in order; enforcing mode refuses to guess', async () => {
    const dead = `127.0.0.1:${await deadPort()}`;
    const s = conf(`unqualified-search-registries = ["${dead}", "${origin.host}"]\n`);
    const record = await (await tempStore()).pull('team/app:v1', s);
    expect(record.name).toBe(`${origin.host}/team/app:v1`);
    expect(record.digest).toBe(fromOrigin.manifestDigest);

    const strict = conf(
      `unqualified-search-registries = ["${dead}", "${origin.host}"]\nshort-name-mode = "enforcing"\n`,
    );
    const err = await failure((await tempStore()).pull('team/app:v1', strict));
    expect(err.code).toBe('EREF');
    expect(err.message).toContain('is ambiguous');
  });

  it('rejects a setting it does not know, naming the file and the key', async () => {
    const s = conf(`[[registry]]\nlocation = "${origin.host}"\ninsecure-skip = true\n`);
    const err = await failure((await tempStore()).pull(`${origin.host}/team/app:v1`, s));
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toMatch(
      /registries\.conf: registry\[0\]\.insecure-skip is not a registries\.conf setting berth knows/,
    );
  });
});

describe('credentials: berth login, auth files and credential helpers', () => {
  const user = { username: 'carol', password: `pw-${Math.random().toString(36).slice(2)}` };
  let registry: StartedRegistry;
  let image: PushedImage;
  beforeAll(async () => {
    registry = await startRegistry({ basic: user, tls: { cert: pki.serverCert, key: pki.serverKey } });
    const client = new RegistryClient({
      registry: registry.host,
      tls: await trusting(registry.host),
      credentials: user,
    });
    image = await pushTestImage(client, randomName('berth/private'), 'v1', layers.slice(0, 1));
  });
  afterAll(async () => {
    await stopped(registry);
  });

  function trusted() {
    const s = isolated();
    put(join(s.root, 'etc/containers/certs.d', registry.host, 'ca.crt'), readFileSync(pki.ca, 'utf8'));
    s.env = { ...s.env, XDG_RUNTIME_DIR: join(s.root, 'run/user/0') };
    return s;
  }

  it('login checks the credentials first, saves them to auth.json (0600), and a pull over TLS uses them', async () => {
    const s = trusted();
    const tls = await loadTlsSettings(registry.host, s, false);
    const authFile = join(s.root, 'run/user/0/containers/auth.json');

    const wrong = new RegistryClient({
      registry: registry.host,
      tls,
      credentials: { ...user, password: 'nope' },
    });
    const rejected = await failure(wrong.checkLogin());
    expect(rejected.code).toBe('EAUTH');
    expect(rejected.message).toBe(`registry ${registry.host} rejected the credentials of carol`);
    expect(existsSync(authFile)).toBe(false);

    await new RegistryClient({ registry: registry.host, tls, credentials: user }).checkLogin();
    expect(await saveCredentials(registry.host, user, s)).toBe(authFile);
    expect(statSync(authFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(authFile, 'utf8'))).toEqual({
      auths: { [registry.host]: { auth: Buffer.from(`carol:${user.password}`).toString('base64') } },
    });

    const store = await tempStore();
    expect((await store.pull(image.ref, s)).digest).toBe(image.manifestDigest);

    await removeCredentials(registry.host, s);
    expect(JSON.parse(readFileSync(authFile, 'utf8'))).toEqual({ auths: {} });
    const err = await failure((await tempStore()).pull(image.ref, s));
    expect(err.code).toBe('EAUTH');
    expect(err.message).toContain(`berth login ${registry.host}`);
    const again = await failure(removeCredentials(registry.host, s));
    expect(again.message).toBe(`not logged into ${registry.host} (nothing for it in ${authFile})`);
  });

  it("reads Docker's config.json after auth.json, and a credential helper it names", async () => {
    const s = trusted();
    const bin = tempDir('berth-bin-');
    const log = join(bin, 'calls');
    put(
      join(bin, 'docker-credential-berthtest'),
      `#!/bin/sh
read server
echo "$1 $server" >> ${log}
if [ "$1" = get ] && [ "$server" = "${registry.host}" ]; then
  printf '{"ServerURL":"%s","Username":"carol","Secret":"%s"}' "$server" "${user.password}"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
`,
      0o755,
    );
    chmodSync(join(bin, 'docker-credential-berthtest'), 0o755);
    s.env = { ...s.env, PATH: `${bin}:${process.env['PATH']}`, DOCKER_CONFIG: join(s.home, 'dockercfg') };
    put(
      join(s.home, 'dockercfg/config.json'),
      JSON.stringify({ credHelpers: { [registry.host]: 'berthtest' } }),
    );
    const found = await findCredentials(registry.host, undefined, s);
    expect(found).toEqual({
      username: 'carol',
      password: user.password,
      source: 'docker-credential-berthtest',
    });
    const store = await tempStore();
    expect((await store.pull(image.ref, s)).digest).toBe(image.manifestDigest);
    expect(readFileSync(log, 'utf8')).toContain(`get ${registry.host}\n`);

    // registries.conf credential-helpers: asked before (here: instead of) the auth files
    rmSync(join(s.home, 'dockercfg/config.json'));
    expect(await findCredentials(registry.host, undefined, s)).toBeUndefined();
    put(join(s.root, 'etc/containers/registries.conf'), 'credential-helpers = ["berthtest"]\n');
    const viaConf = await tempStore();
    expect((await viaConf.pull(image.ref, s)).digest).toBe(image.manifestDigest);

    // credsStore for every other registry: "not found" is an absence, not an error
    put(join(s.home, 'dockercfg/config.json'), JSON.stringify({ credsStore: 'berthtest' }));
    expect(await findCredentials('other.example:5000', undefined, s)).toBeUndefined();
  });
});

describe('token auth against a distribution token server', () => {
  const user = { username: 'alice', password: `pw-${Math.random().toString(36).slice(2)}` };
  let registry: StartedRegistry;
  let image: PushedImage;
  let pusher: RegistryClient;
  let leeway = 0;
  beforeAll(async () => {
    registry = await startRegistry({ token: user });
    pusher = new RegistryClient({ registry: registry.host, credentials: user });
    image = await pushTestImage(pusher, randomName('berth/tok'), 'v1', layers);
    // distribution accepts a token a little past its exp (clock-skew leeway); find out how long
    registry.tokenControl!.expOffsetSeconds = -300 - 30;
    const probe = new RegistryClient({ registry: registry.host });
    leeway = await probe.getManifest(image.repository, 'v1').then(
      () => 60,
      () => 0,
    );
    registry.tokenControl!.expOffsetSeconds = 0;
  });
  afterAll(async () => {
    await stopped(registry);
  });

  it('asks for one pull scope per repository and reuses the token', async () => {
    const before = registry.tokenRequests!.length;
    const store = await tempStore();
    await store.pull(image.ref, isolated());
    expect(registry.tokenRequests!.slice(before)).toEqual([
      { scope: `repository:${image.repository}:pull`, user: undefined },
    ]);
  });

  it('mounts a blob across repositories with push on the target and pull on the source in one token', async () => {
    const target = randomName('berth/mounted');
    const before = registry.tokenRequests!.length;
    expect(await pusher.mountBlob(target, layers[0]!.digest, image.repository)).toBe(true);
    expect(await pusher.hasBlob(target, layers[0]!.digest)).toBe(true);
    expect(registry.tokenRequests!.slice(before)[0]).toEqual({
      scope: `repository:${target}:pull,push repository:${image.repository}:pull`,
      user: 'alice',
    });
  });

  it('gets a new token when the registry rejects an expired one in the middle of a pull', async () => {
    // tokens the server says live 300s but the registry rejects after ~2s (a skewed clock)
    registry.tokenControl!.expOffsetSeconds = -300 - leeway + 2;
    try {
      const before = registry.tokenRequests!.length;
      const store = await tempStore();
      const record = await store.pull(image.ref, {
        ...isolated(),
        onProgress: (e) => {
          // manifest and config are fetched; hold the pull until the token has expired, then the layers
          if (e.type === 'resolved') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3500);
        },
      });
      expect(record.layers).toHaveLength(layers.length);
      const asked = registry.tokenRequests!.slice(before);
      expect(asked.length).toBe(2);
      expect(asked.every((r) => r.scope === `repository:${image.repository}:pull`)).toBe(true);
    } finally {
      registry.tokenControl!.expOffsetSeconds = 0;
    }
  });

  it('exchanges an identity token (OAuth2 refresh token) for access tokens', async () => {
    const before = registry.tokenRequests!.length;
    const client = new RegistryClient({
      registry: registry.host,
      credentials: { username: '', password: '', identityToken: registry.tokenControl!.refreshToken },
    });
    const target = randomName('berth/oauth');
    expect(await client.pushBlob(target, Buffer.from('pushed with an identity token'))).toMatch(/^sha256:/);
    expect(registry.tokenRequests!.slice(before)[0]).toEqual({
      scope: `repository:${target}:pull,push`,
      user: 'alice',
    });
    const wrong = new RegistryClient({
      registry: registry.host,
      credentials: { username: '', password: '', identityToken: 'stale' },
    });
    const err = await failure(wrong.getManifest(image.repository, 'v1'));
    expect(err.message).toMatch(
      /^token service 127\.0\.0\.1:\d+ rejected the credentials of the identity token/,
    );
  });

  it('a 401 says what to do: wrong credentials, and anonymous push', async () => {
    const wrong = new RegistryClient({ registry: registry.host, credentials: { ...user, password: 'bad' } });
    const err = await failure(wrong.getManifest(image.repository, 'v1'));
    expect(err).toMatchObject({ code: 'EAUTH', status: 401 });
    expect(err.message).toMatch(
      /^token service 127\.0\.0\.1:\d+ rejected the credentials of alice: check them, then "berth login 127\.0\.0\.1:\d+" again$/,
    );
    const anon = new RegistryClient({ registry: registry.host });
    const push = await failure(anon.pushBlob(image.repository, Buffer.from('x')));
    expect(push).toMatchObject({ code: 'EAUTH', status: 401 });
    expect(push.message).toBe(
      `registry ${registry.host} requires authentication for ${image.repository}: log in with "berth login ${registry.host}" (or pass --creds USER:PASSWORD)`,
    );
  });
});

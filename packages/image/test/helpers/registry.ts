import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface TestRegistry {
  /** 127.0.0.1:PORT, as used in references */
  host: string;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

export interface RegistryAuth {
  /** htpasswd basic auth */
  basic?: { username: string; password: string };
  /** bearer tokens from a token server started here, which checks these credentials */
  token?: { username: string; password: string };
  /** serve HTTPS with this certificate; `clientCa` makes it ask for client certificates signed by that CA */
  tls?: { cert: string; key: string; clientCa?: string };
}

/** Knobs of the test token server, changeable while it runs. */
export interface TokenControl {
  /** added to every token's exp claim (negative: tokens the registry soon rejects as expired) */
  expOffsetSeconds: number;
  /** expires_in the server claims (it may lie, as a skewed clock does) */
  expiresIn: number;
  /** the OAuth2 refresh token (an identity token) the server accepts for the known user */
  refreshToken: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
    });
  });
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** A distribution-spec token server: signs JWTs with a throwaway key whose certificate the registry trusts. */
async function startTokenServer(dir: string, creds: { username: string; password: string }, service: string) {
  const key = join(dir, 'token.key');
  const crt = join(dir, 'token.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      crt,
      '-days',
      '1',
      '-subj',
      '/CN=berth-test-token',
    ],
    { stdio: 'ignore' },
  );
  const cert = new X509Certificate(readFileSync(crt));
  const keyPem = readFileSync(key, 'utf8');
  const requests: { scope: string; user: string | undefined }[] = [];
  const control: TokenControl = {
    expOffsetSeconds: 0,
    expiresIn: 300,
    refreshToken: `refresh-${randomBytes(8).toString('hex')}`,
  };
  const issue = (res: ServerResponse, scopes: string[], user: string | undefined, oauth: boolean) => {
    const scope = scopes.join(' ');
    requests.push({ scope, user });
    // anonymous callers may pull, only the known user may push
    const access = scopes.map((sc) => {
      const [type, name, actions] = sc.split(':');
      return {
        type,
        name,
        actions: (actions ?? '').split(',').filter((a) => a === 'pull' || user !== undefined),
      };
    });
    const now = Math.floor(Date.now() / 1000);
    const head = { alg: 'RS256', typ: 'JWT', x5c: [cert.raw.toString('base64')] };
    const claims = {
      iss: 'berth-test-issuer',
      sub: user ?? '',
      aud: service,
      exp: now + 300 + control.expOffsetSeconds,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const signing = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(signing).sign(keyPem);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        [oauth ? 'access_token' : 'token']: `${signing}.${b64url(sig)}`,
        expires_in: control.expiresIn,
        issued_at: new Date().toISOString(),
      }),
    );
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST') {
      // OAuth2 (identity tokens): grant_type=refresh_token with the refresh token handed out below
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        if (
          form.get('grant_type') !== 'refresh_token' ||
          form.get('refresh_token') !== control.refreshToken
        ) {
          res.writeHead(401).end('{"details":"bad refresh token"}');
          return;
        }
        issue(res, (form.get('scope') ?? '').split(' ').filter(Boolean), creds.username, true);
      });
      return;
    }
    const scopes = url.searchParams.getAll('scope');
    const header = req.headers.authorization;
    let user: string | undefined;
    if (header?.startsWith('Basic ')) {
      const [u, p] = Buffer.from(header.slice(6), 'base64').toString().split(':');
      if (u !== creds.username || p !== creds.password) {
        res.writeHead(401).end('{"details":"wrong credentials"}');
        return;
      }
      user = u;
    }
    issue(res, scopes, user, false);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { realm: `http://127.0.0.1:${port}/token`, crt, server, requests, control };
}

export interface StartedRegistry extends TestRegistry {
  tokenRequests?: { scope: string; user: string | undefined }[];
  tokenControl?: TokenControl;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Debian's docker-registry on a random loopback port with its own storage and config; never the system service. */
export async function startRegistry(auth: RegistryAuth = {}): Promise<StartedRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-registry-'));
  let authYaml = '';
  let token: Awaited<ReturnType<typeof startTokenServer>> | undefined;
  if (auth.basic) {
    const line = execFileSync('htpasswd', ['-Bbn', auth.basic.username, auth.basic.password], {
      encoding: 'utf8',
    });
    writeFileSync(join(dir, 'htpasswd'), line.trim() + '\n');
    authYaml = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (auth.token) {
    token = await startTokenServer(dir, auth.token, 'berth-test-registry');
    authYaml = `auth:\n  token:\n    realm: ${token.realm}\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: ${token.crt}\n`;
  }
  const tlsYaml = auth.tls
    ? `  tls:\n    certificate: ${auth.tls.cert}\n    key: ${auth.tls.key}\n${auth.tls.clientCa ? `    clientcas:\n      - ${auth.tls.clientCa}\n` : ''}`
    : '';
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString('hex')}
${tlsYaml}${authYaml}`,
    );
    const child: ChildProcess = spawn('docker-registry', ['serve', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let ready = false;
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      if (await tcpOpen(port)) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (ready && child.pid !== undefined) {
      const pid = child.pid;
      return {
        host: `127.0.0.1:${port}`,
        pid,
        dir,
        ...(token ? { tokenRequests: token.requests, tokenControl: token.control } : {}),
        async stop() {
          if (child.exitCode === null) {
            process.kill(pid, 'SIGTERM');
            await Promise.race([exited, sleep(5000).then(() => process.kill(pid, 'SIGKILL'))]);
          }
          await new Promise<void>((resolve) => (token ? token.server.close(() => resolve()) : resolve()));
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    await exited;
    if (attempt >= 2) throw new Error(`docker-registry did not start: ${stderr}`);
  }
}

export interface TestPki {
  dir: string;
  /** the CA that signed the server and client certificates */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all made by openssl. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'berth-pki-'));
  const p = (n: string) => join(dir, n);
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=berth test CA',
  ]);
  writeFileSync(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('server.key'),
    '-out',
    p('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.crt'),
    '-days',
    '2',
    '-extfile',
    p('server.ext'),
  ]);
  writeFileSync(p('client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('client.key'),
    '-out',
    p('client.csr'),
    '-subj',
    '/CN=berth test client',
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    p('client.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('client.cert'),
    '-days',
    '2',
    '-extfile',
    p('client.ext'),
  ]);
  return {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.cert'),
    clientKey: p('client.key'),
  };
}

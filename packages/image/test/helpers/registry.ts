import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
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
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scope = url.searchParams.get('scope') ?? '';
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
    requests.push({ scope, user });
    const [type, name, actions] = scope.split(':');
    // anonymous callers may pull, only the known user may push
    const granted = (actions ?? '').split(',').filter((a) => a === 'pull' || user !== undefined);
    const now = Math.floor(Date.now() / 1000);
    const head = { alg: 'RS256', typ: 'JWT', x5c: [cert.raw.toString('base64')] };
    const claims = {
      iss: 'berth-test-issuer',
      sub: user ?? '',
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access: type ? [{ type, name, actions: granted }] : [],
    };
    const signing = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(signing).sign(keyPem);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token: `${signing}.${b64url(sig)}`,
        expires_in: 300,
        issued_at: new Date().toISOString(),
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { realm: `http://127.0.0.1:${port}/token`, crt, server, requests };
}

export interface StartedRegistry extends TestRegistry {
  tokenRequests?: { scope: string; user: string | undefined }[];
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
${authYaml}`,
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
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`);
        await res.body?.cancel();
        ready = true;
        break;
      } catch {
        await sleep(50);
      }
    }
    if (ready && child.pid !== undefined) {
      const pid = child.pid;
      return {
        host: `127.0.0.1:${port}`,
        pid,
        dir,
        ...(token ? { tokenRequests: token.requests } : {}),
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

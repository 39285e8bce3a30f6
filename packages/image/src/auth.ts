import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ImageError, isErrno } from './errors.js';

export interface Credentials {
  username: string;
  password: string;
  /** an OAuth2 refresh token (Docker's `identitytoken`, a helper's `<token>` user), used instead of the password */
  identityToken?: string;
  /** where they came from (a file or a credential helper), for messages */
  source?: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
}

export function defaultDockerConfigPath(): string {
  const dir = process.env['DOCKER_CONFIG'] ?? join(homedir(), '.docker');
  return join(dir, 'config.json');
}

/** Keys docker itself writes for a registry: the bare host, URLs, and the legacy index URL for Docker Hub. */
function candidateKeys(registry: string): string[] {
  const keys = [
    registry,
    `https://${registry}`,
    `http://${registry}`,
    `https://${registry}/v1/`,
    `https://${registry}/v2/`,
  ];
  if (registry === 'docker.io')
    keys.push('https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io');
  return keys;
}

/** Reads basic-auth credentials for `registry` from a docker-style config.json (`auths`). */
export async function credentialsFromDockerConfig(
  registry: string,
  file = defaultDockerConfigPath(),
): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw new ImageError('EAUTH', `cannot read credentials file ${file}`, {
      op: 'read auth config',
      path: file,
      cause: err,
    });
  }
  let config: DockerConfig;
  try {
    config = JSON.parse(text) as DockerConfig;
  } catch (err) {
    throw new ImageError('EAUTH', `credentials file ${file} is not valid json`, {
      op: 'read auth config',
      path: file,
      cause: err,
    });
  }
  for (const key of candidateKeys(registry)) {
    const entry = config.auths?.[key];
    if (entry === undefined) continue;
    if (entry.username !== undefined && entry.password !== undefined) {
      return { username: entry.username, password: entry.password };
    }
    if (entry.auth !== undefined) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) {
        throw new ImageError(
          'EAUTH',
          `credentials file ${file}: auths.${key}.auth is not base64 of user:password`,
          {
            op: 'read auth config',
            path: file,
          },
        );
      }
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
  }
  return undefined;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (RFC 7235 auth-params). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][\w-]*)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  const rest = m[2] ?? '';
  for (let p = re.exec(rest); p !== null; p = re.exec(rest)) {
    params[(p[1] ?? '').toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Tokens per realm, service and scope, dropped a little before they expire so a slow pull never sends a stale one. */
export class TokenCache {
  readonly #tokens = new Map<string, CachedToken>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get(key: string): string | undefined {
    const t = this.#tokens.get(key);
    if (t === undefined) return undefined;
    if (t.expiresAt - 10_000 <= this.#now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  /** Forgets the token of `key`; with `token`, only if it is still that one (another request may have renewed it). */
  delete(key: string, token?: string): void {
    if (token === undefined || this.#tokens.get(key)?.token === token) this.#tokens.delete(key);
  }

  set(key: string, token: string, expiresInSeconds: number, issuedAt?: string): void {
    const issued = issuedAt !== undefined ? Date.parse(issuedAt) : Number.NaN;
    const start = Number.isFinite(issued) ? Math.min(issued, this.#now()) : this.#now();
    // the distribution token spec: a missing or tiny expires_in means 60 seconds
    const seconds = Math.max(expiresInSeconds, 60);
    this.#tokens.set(key, { token, expiresAt: start + seconds * 1000 });
  }
}

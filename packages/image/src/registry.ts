import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type Credentials, parseChallenge, TokenCache } from './auth.js';
import { assertDigest, sha256, verifyBuffer } from './digest.js';
import { errnoOf, ImageError } from './errors.js';
import { ACCEPT_MANIFESTS } from './media-types.js';
import { isLoopbackRegistry, registryApiHost } from './reference.js';

export interface RegistryClientOptions {
  /** the registry as in a reference: docker.io, localhost:5000 */
  registry: string;
  /** allow plain HTTP; loopback registries always use it, like docker's default insecure 127.0.0.0/8 */
  insecure?: boolean;
  credentials?: Credentials;
  tokenCache?: TokenCache;
  userAgent?: string;
  signal?: AbortSignal;
}

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

export interface BlobResponse {
  stream: Readable;
  /** where the body starts: the requested offset when the registry honoured Range, otherwise 0 */
  offset: number;
}

/** The registry scope a token is asked for. */
export type Action = 'pull' | 'pull,push';
type AuthState =
  | { scheme: 'basic' }
  | { scheme: 'bearer'; realm: string; service: string | undefined }
  | undefined;

const MAX_REDIRECTS = 5;

/** A client for one registry, speaking the OCI distribution spec. */
export class RegistryClient {
  readonly registry: string;
  readonly baseUrl: string;
  readonly #credentials: Credentials | undefined;
  readonly #tokens: TokenCache;
  readonly #userAgent: string;
  readonly #signal: AbortSignal | undefined;
  #auth: AuthState;

  constructor(options: RegistryClientOptions) {
    this.registry = options.registry;
    const host = registryApiHost(options.registry);
    const scheme = options.insecure === true || isLoopbackRegistry(options.registry) ? 'http' : 'https';
    this.baseUrl = `${scheme}://${host}`;
    this.#credentials = options.credentials;
    this.#tokens = options.tokenCache ?? new TokenCache();
    this.#userAgent = options.userAgent ?? 'berth';
    this.#signal = options.signal;
  }

  /** `GET /v2/`: proves the endpoint speaks the distribution API and learns how it wants to be authenticated. */
  async probe(): Promise<void> {
    const res = await this.#send('GET', '/v2/', {}, undefined);
    if (res.status === 401) {
      this.#learnChallenge(res, '/v2/');
      await res.body?.cancel();
      return;
    }
    await res.body?.cancel();
    if (res.status !== 200) throw this.#statusError(res.status, 'probe registry', '/v2/', undefined);
  }

  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.#request('GET', path, 'pull', repository, { accept: ACCEPT_MANIFESTS });
    if (res.status !== 200) throw await this.#responseError(res, 'fetch manifest', path);
    const body = Buffer.from(await res.arrayBuffer());
    const digest = sha256(body);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new ImageError('EDIGEST', `manifest ${repository}@${reference}: content has digest ${digest}`, {
        op: 'verify manifest',
        path: this.baseUrl + path,
      });
    }
    const header = res.headers.get('docker-content-digest');
    if (header?.startsWith('sha256:') && header !== digest) {
      throw new ImageError(
        'EDIGEST',
        `manifest ${repository}:${reference}: registry said ${header}, content has ${digest}`,
        {
          op: 'verify manifest',
          path: this.baseUrl + path,
        },
      );
    }
    let mediaType = res.headers.get('content-type')?.split(';')[0]?.trim() ?? '';
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: string };
      if (typeof parsed.mediaType === 'string') mediaType = parsed.mediaType;
    } catch (err) {
      throw new ImageError('EMANIFEST', `manifest ${repository}:${reference} is not valid json`, {
        op: 'fetch manifest',
        path: this.baseUrl + path,
        cause: err,
      });
    }
    return { mediaType, digest, body };
  }

  /** Streams a blob from `offset` (HTTP Range), so an interrupted download can resume. */
  async getBlob(repository: string, digest: string, offset = 0): Promise<BlobResponse> {
    assertDigest(digest);
    const path = `/v2/${repository}/blobs/${digest}`;
    const headers: Record<string, string> = {};
    if (offset > 0) headers['range'] = `bytes=${offset}-`;
    const res = await this.#request('GET', path, 'pull', repository, headers);
    if (res.status !== 200 && res.status !== 206) throw await this.#responseError(res, 'fetch blob', path);
    if (res.body === null) throw this.#statusError(res.status, 'fetch blob', path, 'empty body');
    const stream = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    return { stream, offset: res.status === 206 ? offset : 0 };
  }

  async getBlobBuffer(repository: string, digest: string, size: number, what: string): Promise<Buffer> {
    const { stream } = await this.getBlob(repository, digest);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      total += chunk.length;
      // a config or manifest never grows past its descriptor; refuse before buffering a hostile body
      if (total > size) {
        stream.destroy();
        throw new ImageError('ESIZE', `${what} ${digest}: larger than the expected ${size} bytes`, {
          op: 'fetch blob',
          path: digest,
        });
      }
      chunks.push(chunk);
    }
    const data = Buffer.concat(chunks);
    verifyBuffer(data, digest, what, size);
    return data;
  }

  async hasBlob(repository: string, digest: string, action: Action = 'pull'): Promise<boolean> {
    const path = `/v2/${repository}/blobs/${digest}`;
    const res = await this.#request('HEAD', path, action, repository, {});
    await res.body?.cancel();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw this.#statusError(res.status, 'check blob', path, undefined);
  }

  /** Monolithic upload (POST then PUT with ?digest=), per the distribution spec's push section. */
  async pushBlob(repository: string, data: Uint8Array): Promise<string> {
    const digest = sha256(data);
    if (await this.hasBlob(repository, digest, 'pull,push')) return digest;
    const start = `/v2/${repository}/blobs/uploads/`;
    const res = await this.#request('POST', start, 'pull,push', repository, {});
    await res.body?.cancel();
    if (res.status !== 202) throw this.#statusError(res.status, 'start blob upload', start, undefined);
    const location = res.headers.get('location');
    if (location === null)
      throw this.#statusError(res.status, 'start blob upload', start, 'no location header');
    const url = new URL(location, this.baseUrl);
    url.searchParams.set('digest', digest);
    const put = await this.#request(
      'PUT',
      url.toString(),
      'pull,push',
      repository,
      {
        'content-type': 'application/octet-stream',
      },
      data,
    );
    if (put.status !== 201) throw await this.#responseError(put, 'upload blob', start);
    await put.body?.cancel();
    return digest;
  }

  async putManifest(
    repository: string,
    reference: string,
    mediaType: string,
    body: Uint8Array,
  ): Promise<string> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.#request(
      'PUT',
      path,
      'pull,push',
      repository,
      { 'content-type': mediaType },
      body,
    );
    if (res.status !== 201) throw await this.#responseError(res, 'put manifest', path);
    await res.body?.cancel();
    return sha256(body);
  }

  async #request(
    method: string,
    pathOrUrl: string,
    action: Action,
    repository: string,
    headers: Record<string, string>,
    body?: Uint8Array,
  ): Promise<Response> {
    const scope = `repository:${repository}:${action}`;
    const first = await this.#send(
      method,
      pathOrUrl,
      { ...headers, ...(await this.#authorization(scope)) },
      body,
    );
    if (first.status !== 401) return first;
    await first.body?.cancel();
    const challenged = this.#learnChallenge(first, pathOrUrl);
    if (challenged.scheme === 'basic' && this.#credentials === undefined)
      throw this.#noCredentials(pathOrUrl);
    const retry = await this.#send(
      method,
      pathOrUrl,
      { ...headers, ...(await this.#authorization(scope)) },
      body,
    );
    if (retry.status === 401) {
      await retry.body?.cancel();
      throw new ImageError(
        'EAUTH',
        this.#credentials === undefined
          ? `registry ${this.registry} refused anonymous access to ${repository}: log in first (credentials in config.json auths)`
          : `registry ${this.registry} rejected the credentials of ${this.#credentials.username} for ${repository}`,
        { op: 'authenticate', path: this.#url(pathOrUrl), status: 401 },
      );
    }
    return retry;
  }

  #learnChallenge(res: Response, pathOrUrl: string): NonNullable<AuthState> {
    const header = res.headers.get('www-authenticate');
    const challenge = header === null ? undefined : parseChallenge(header);
    if (challenge?.scheme === 'bearer' && challenge.params['realm'] !== undefined) {
      this.#auth = {
        scheme: 'bearer',
        realm: challenge.params['realm'],
        service: challenge.params['service'],
      };
    } else if (challenge?.scheme === 'basic') {
      this.#auth = { scheme: 'basic' };
    } else {
      throw new ImageError(
        'EAUTH',
        `registry ${this.registry} asked for authentication without a usable challenge`,
        {
          op: 'authenticate',
          path: this.#url(pathOrUrl),
          status: 401,
        },
      );
    }
    return this.#auth;
  }

  #noCredentials(pathOrUrl: string): ImageError {
    return new ImageError(
      'EAUTH',
      `registry ${this.registry} requires authentication: no credentials for ${this.registry} in config.json auths`,
      { op: 'authenticate', path: this.#url(pathOrUrl), status: 401 },
    );
  }

  async #authorization(scope: string): Promise<Record<string, string>> {
    const auth = this.#auth;
    if (auth === undefined) return {};
    if (auth.scheme === 'basic') {
      if (this.#credentials === undefined) return {};
      const { username, password } = this.#credentials;
      return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
    }
    const key = `${auth.realm}|${auth.service ?? ''}|${scope}`;
    let token = this.#tokens.get(key);
    if (token === undefined) {
      token = await this.#fetchToken(auth.realm, auth.service, scope, key);
    }
    return { authorization: `Bearer ${token}` };
  }

  async #fetchToken(realm: string, service: string | undefined, scope: string, key: string): Promise<string> {
    const url = new URL(realm);
    if (service !== undefined) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = { 'user-agent': this.#userAgent };
    if (this.#credentials !== undefined) {
      const { username, password } = this.#credentials;
      headers['authorization'] = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    let res: Response;
    try {
      // credentials go to the realm the registry named, and to no host it might redirect to
      res = await fetch(url, { headers, redirect: 'error', signal: this.#signal ?? null });
    } catch (err) {
      throw this.#networkError(err, 'fetch token', url.toString());
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new ImageError(
        'EAUTH',
        this.#credentials === undefined
          ? `token service ${url.host} refused anonymous access to ${scope}: log in first`
          : `token service ${url.host} rejected the credentials of ${this.#credentials.username}`,
        { op: 'fetch token', path: url.origin + url.pathname, status: res.status },
      );
    }
    if (res.status !== 200) throw await this.#responseError(res, 'fetch token', url.origin + url.pathname);
    const json = (await res.json()) as {
      token?: string;
      access_token?: string;
      expires_in?: number;
      issued_at?: string;
    };
    const token = json.token ?? json.access_token;
    if (typeof token !== 'string' || token.length === 0) {
      throw new ImageError('EAUTH', `token service ${url.host} answered without a token`, {
        op: 'fetch token',
        path: url.origin + url.pathname,
      });
    }
    this.#tokens.set(key, token, json.expires_in ?? 60, json.issued_at);
    return token;
  }

  #url(pathOrUrl: string): string {
    return pathOrUrl.startsWith('/') ? this.baseUrl + pathOrUrl : pathOrUrl;
  }

  /** Follows redirects by hand so that Authorization never reaches a host other than the registry's. */
  async #send(
    method: string,
    pathOrUrl: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
  ) {
    let url = new URL(this.#url(pathOrUrl));
    const origin = new URL(this.baseUrl).origin;
    let h: Record<string, string> = { 'user-agent': this.#userAgent, ...headers };
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: h,
          body: body ?? null,
          redirect: 'manual',
          signal: this.#signal ?? null,
        });
      } catch (err) {
        throw this.#networkError(err, `${method} ${url.pathname}`, url.toString());
      }
      const location = res.headers.get('location');
      const isRedirect = res.status >= 300 && res.status < 400 && location !== null && res.status !== 304;
      if (!isRedirect) return res;
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS) {
        throw new ImageError(
          'EREGISTRY',
          `registry ${this.registry}: too many redirects for ${url.pathname}`,
          {
            op: method,
            path: url.toString(),
          },
        );
      }
      url = new URL(location, url);
      if (url.origin !== origin) {
        const { authorization: _dropped, ...rest } = h;
        h = rest;
      }
    }
  }

  #networkError(err: unknown, op: string, path: string): ImageError {
    if (err instanceof ImageError) return err;
    if (typeof err === 'object' && err !== null && 'name' in err && err.name === 'AbortError') {
      return new ImageError('EABORT', `${op} ${path}: aborted`, { op, path, cause: err });
    }
    const cause = (err as { cause?: unknown }).cause;
    const errno = errnoOf(cause) ?? errnoOf(err);
    const what = errno ?? (cause instanceof Error ? cause.message : String(err));
    return new ImageError('EREGISTRY', `cannot reach registry ${this.registry} at ${path}: ${what}`, {
      op,
      path,
      cause: err,
      ...(errno !== undefined ? { errno } : {}),
    });
  }

  #statusError(status: number, op: string, pathOrUrl: string, detail: string | undefined): ImageError {
    const code = status === 404 ? 'ENOTFOUND' : status === 401 || status === 403 ? 'EAUTH' : 'EREGISTRY';
    return new ImageError(
      code,
      `${op} ${this.#url(pathOrUrl)}: registry answered ${status}${detail ? `: ${detail}` : ''}`,
      {
        op,
        path: this.#url(pathOrUrl),
        status,
      },
    );
  }

  async #responseError(res: Response, op: string, pathOrUrl: string): Promise<ImageError> {
    let detail: string | undefined;
    try {
      const text = await res.text();
      const json = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      const first = json.errors?.[0];
      if (first !== undefined) detail = [first.code?.toLowerCase(), first.message].filter(Boolean).join(': ');
    } catch {
      // registries without a JSON error body still get a useful message from the status
    }
    return this.#statusError(res.status, op, pathOrUrl, detail);
  }
}

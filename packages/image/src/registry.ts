import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type Credentials, parseChallenge, TokenCache } from './auth.js';
import { assertDigest, sha256, verifyBuffer } from './digest.js';
import { errnoOf, ImageError } from './errors.js';
import { ACCEPT_MANIFESTS } from './media-types.js';
import { isLoopbackRegistry, registryApiHost } from './reference.js';
import {
  certificateError,
  clientCertificateError,
  clientCertRefused,
  customTls,
  type TlsSettings,
  tlsCode,
} from './tls.js';
import { fetchTransport, type Transport, tlsTransport } from './transport.js';

export interface RegistryClientOptions {
  /** the registry as in a reference: docker.io, localhost:5000 */
  registry: string;
  /**
   * An insecure registry (`--tls-verify=false`, registries.conf `insecure = true`): HTTPS without certificate
   * checks, then plain HTTP. Without it berth speaks HTTPS only, except that a loopback registry whose port does
   * not speak TLS at all is reached over plain HTTP (Docker's rule for 127.0.0.0/8 and localhost).
   */
  insecure?: boolean;
  /** CAs (added to the system store), client certificate and verification for this host: see loadTlsSettings */
  tls?: TlsSettings;
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

/** A fetch failure that means "this port does not speak TLS" rather than "the certificate is wrong". */
function notTls(err: unknown): boolean {
  if (tlsCode(err) !== undefined || clientCertRefused(err)) return false;
  for (let e: unknown = err, i = 0; e !== undefined && e !== null && i < 4; i++) {
    const code = (e as { code?: unknown }).code;
    const message = (e as { message?: unknown }).message;
    if (typeof code === 'string' && /^(EPROTO|ECONNRESET|ERR_SSL_|UND_ERR_SOCKET)/.test(code)) return true;
    if (
      typeof message === 'string' &&
      /wrong version number|packet length too long|socket hang up|other side closed/i.test(message)
    )
      return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
type AuthState =
  | { scheme: 'basic' }
  | { scheme: 'bearer'; realm: string; service: string | undefined }
  | undefined;

const MAX_REDIRECTS = 5;
/** The largest manifest or index read (containerd's limit; the distribution spec asks registries to take 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** The largest token-service answer read (a JSON object holding a token: a few KiB in practice). */
export const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
/** How much of an error response's body is read for its message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** A response body read whole, but never more than `limit` bytes: a hostile registry cannot exhaust memory. */
async function readLimited(res: Response, limit: number, what: string, url: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  const tooLarge = () =>
    new ImageError('ESIZE', `${what} is larger than ${limit} bytes: refused`, { op: 'fetch', path: url });
  if (declared > limit) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(Buffer.from(value));
    }
  }
  return Buffer.concat(chunks);
}

/** At most the first `limit` bytes of a response body; the rest is not read. */
async function readPrefix(res: Response, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body) {
    const reader = res.body.getReader();
    while (total < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
      total += value.length;
    }
    if (total >= limit) await reader.cancel();
  }
  return Buffer.concat(chunks).subarray(0, limit);
}

function scopeOf(repository: string, action: Action | 'pull'): string {
  return `repository:${repository}:${action}`;
}

/** A client for one registry, speaking the OCI distribution spec. */
export class RegistryClient {
  readonly registry: string;
  readonly #host: string;
  readonly #insecure: boolean;
  readonly #tls: TlsSettings | undefined;
  readonly #transport: Transport;
  readonly #credentials: Credentials | undefined;
  readonly #tokens: TokenCache;
  readonly #userAgent: string;
  readonly #signal: AbortSignal | undefined;
  #auth: AuthState;
  #base: string | undefined;
  #probing: Promise<Response> | undefined;
  readonly #pendingTokens = new Map<string, Promise<string>>();

  constructor(options: RegistryClientOptions) {
    this.registry = options.registry;
    this.#host = registryApiHost(options.registry);
    this.#insecure = options.insecure === true || options.tls?.verify === false;
    const tls: TlsSettings | undefined =
      this.#insecure && options.tls === undefined
        ? { verify: false, ca: [], caFiles: [], hintDir: `/etc/containers/certs.d/${options.registry}` }
        : options.tls !== undefined && this.#insecure
          ? { ...options.tls, verify: false }
          : options.tls;
    this.#tls = tls;
    this.#transport = customTls(tls) ? tlsTransport(tls!) : fetchTransport;
    this.#credentials = options.credentials;
    this.#tokens = options.tokenCache ?? new TokenCache();
    this.#userAgent = options.userAgent ?? 'berth';
    this.#signal = options.signal;
  }

  /** The endpoint in use: https://host, or http://host once an insecure or loopback registry fell back to it. */
  get baseUrl(): string {
    return this.#base ?? `https://${this.#host}`;
  }

  /** Whether credentials were given (for messages: anonymous vs rejected). */
  get hasCredentials(): boolean {
    return this.#credentials !== undefined;
  }

  /**
   * `GET /v2/` over HTTPS, then over plain HTTP where that is allowed (an insecure registry, or a loopback one
   * whose port does not speak TLS): the first endpoint that answers is the one every later request uses.
   */
  async #endpoint(): Promise<Response> {
    const candidates = [`https://${this.#host}`];
    const loopback = isLoopbackRegistry(this.registry);
    if (this.#insecure || loopback) candidates.push(`http://${this.#host}`);
    let last: unknown;
    for (const [i, base] of candidates.entries()) {
      try {
        const res = await this.#transport(new URL('/v2/', base), {
          method: 'GET',
          headers: { 'user-agent': this.#userAgent },
          signal: this.#signal ?? null,
        });
        this.#base = base;
        return res;
      } catch (err) {
        last = err;
        const code = tlsCode(err);
        if (code !== undefined && !this.#insecure)
          throw certificateError(this.registry, base + '/v2/', code, this.#tls, err);
        if (i === 0 && clientCertRefused(err))
          throw clientCertificateError(this.registry, base + '/v2/', this.#tls, err);
        // loopback without --tls-verify=false: plain HTTP only when the port does not speak TLS at all
        if (i === 0 && !this.#insecure && loopback && !notTls(err))
          throw this.#networkError(err, 'GET /v2/', base + '/v2/');
      }
    }
    throw this.#networkError(last, 'GET /v2/', candidates[candidates.length - 1] + '/v2/');
  }

  /** Finds the endpoint once; resolves to the status of its `GET /v2/` when this call made that request. */
  async #ensureEndpoint(): Promise<number | undefined> {
    if (this.#base !== undefined && this.#probing === undefined) return undefined;
    const mine = this.#probing === undefined;
    this.#probing ??= this.#endpoint();
    let res: Response;
    try {
      res = await this.#probing;
    } catch (err) {
      this.#probing = undefined;
      throw err;
    }
    if (!mine) return undefined;
    this.#probing = undefined;
    if (res.status === 401 && res.headers.get('www-authenticate') !== null) this.#learnChallenge(res, '/v2/');
    await res.body?.cancel().catch(() => {});
    return res.status;
  }

  /** `GET /v2/`: proves the endpoint speaks the distribution API and learns how it wants to be authenticated. */
  async probe(): Promise<void> {
    let status = await this.#ensureEndpoint();
    if (status === undefined) {
      const res = await this.#send('GET', '/v2/', {}, undefined);
      if (res.status === 401) this.#learnChallenge(res, '/v2/');
      await res.body?.cancel();
      status = res.status;
    }
    if (status !== 200 && status !== 401)
      throw this.#statusError(status, 'probe registry', '/v2/', undefined);
  }

  /**
   * Checks that the credentials work (what `berth login` does before it saves them): basic auth against `/v2/`,
   * or a token from the registry's token service, then `/v2/` with it. Resolves when the registry needs no login.
   */
  async checkLogin(): Promise<void> {
    await this.probe();
    const auth = this.#auth;
    if (auth === undefined) return;
    if (this.#credentials === undefined) throw this.#noCredentials('/v2/');
    let header: Record<string, string>;
    if (auth.scheme === 'basic') header = await this.#authorization([]);
    else
      header = { authorization: `Bearer ${await this.#fetchToken(auth.realm, auth.service, [], 'login')}` };
    const res = await this.#send('GET', '/v2/', header, undefined);
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) {
      throw new ImageError(
        'EAUTH',
        `registry ${this.registry} rejected the credentials of ${this.#credentials.username}`,
        {
          op: 'login',
          path: this.#url('/v2/'),
          status: res.status,
        },
      );
    }
    if (res.status !== 200) throw this.#statusError(res.status, 'login', '/v2/', undefined);
  }

  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.#request('GET', path, [scopeOf(repository, 'pull')], { accept: ACCEPT_MANIFESTS });
    if (res.status !== 200) throw await this.#responseError(res, 'fetch manifest', path);
    const body = await readLimited(
      res,
      MAX_MANIFEST_BYTES,
      `manifest ${repository}:${reference}`,
      this.baseUrl + path,
    );
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
    const res = await this.#request('GET', path, [scopeOf(repository, 'pull')], headers);
    if (res.status !== 200 && res.status !== 206) throw await this.#responseError(res, 'fetch blob', path);
    if (res.body === null) throw this.#statusError(res.status, 'fetch blob', path, 'empty body');
    // The signal goes to the stream itself, not only to fetch: Node 20's fetch leaves a body whose last bytes
    // had arrived when the abort came neither ended nor errored, and a reader waiting for its end hangs.
    const stream = Readable.fromWeb(
      res.body as WebReadableStream<Uint8Array>,
      this.#signal ? { signal: this.#signal } : {},
    );
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
    const res = await this.#request('HEAD', path, [scopeOf(repository, action)], {});
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
    const res = await this.#request('POST', start, [scopeOf(repository, 'pull,push')], {});
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
      [scopeOf(repository, 'pull,push')],
      {
        'content-type': 'application/octet-stream',
      },
      data,
    );
    if (put.status !== 201) throw await this.#responseError(put, 'upload blob', start);
    await put.body?.cancel();
    return digest;
  }

  /**
   * Cross-repository blob mount (`POST …/blobs/uploads/?mount=DIGEST&from=FROM`): the token asks for push on
   * `repository` and pull on `from` in one request. True when the registry mounted the blob (201); false when
   * it would not (it then opened an upload, which is cancelled).
   */
  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    assertDigest(digest);
    const start = `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
    const res = await this.#request(
      'POST',
      start,
      [scopeOf(repository, 'pull,push'), scopeOf(from, 'pull')],
      {},
    );
    await res.body?.cancel();
    if (res.status === 201) return true;
    if (res.status === 202) {
      const location = res.headers.get('location');
      if (location !== null) {
        const del = await this.#request(
          'DELETE',
          new URL(location, this.baseUrl).toString(),
          [scopeOf(repository, 'pull,push')],
          {},
        );
        await del.body?.cancel();
      }
      return false;
    }
    throw this.#statusError(res.status, 'mount blob', start, undefined);
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
      [scopeOf(repository, 'pull,push')],
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
    scopes: string[],
    headers: Record<string, string>,
    body?: Uint8Array,
  ): Promise<Response> {
    await this.#ensureEndpoint();
    const auth = await this.#authorization(scopes);
    const first = await this.#send(method, pathOrUrl, { ...headers, ...auth }, body);
    if (first.status !== 401) return first;
    await first.body?.cancel();
    const challenged = this.#learnChallenge(first, pathOrUrl);
    if (challenged.scheme === 'basic' && this.#credentials === undefined)
      throw this.#noCredentials(pathOrUrl);
    // a token the registry no longer accepts (expired early, clock skew, revoked): ask for a new one, once
    const sent = auth['authorization']?.startsWith('Bearer ') ? auth['authorization'].slice(7) : undefined;
    if (challenged.scheme === 'bearer' && sent !== undefined)
      this.#tokens.delete(this.#tokenKey(challenged, scopes), sent);
    const retry = await this.#send(
      method,
      pathOrUrl,
      { ...headers, ...(await this.#authorization(scopes)) },
      body,
    );
    if (retry.status === 401) {
      await retry.body?.cancel();
      const what = scopes.map((s) => s.split(':')[1]).join(', ');
      throw new ImageError(
        'EAUTH',
        this.#credentials === undefined
          ? `registry ${this.registry} requires authentication for ${what}: log in with "berth login ${this.registry}" (or pass --creds USER:PASSWORD)`
          : challenged.scheme === 'basic'
            ? `registry ${this.registry} rejected the credentials of ${this.#credentials.username} for ${what}${this.#credentials.source ? ` (from ${this.#credentials.source})` : ''}: check them, then "berth login ${this.registry}" again`
            : `registry ${this.registry} refused ${this.#credentials.username || 'the identity token'} access to ${what}${this.#credentials.source ? ` (credentials from ${this.#credentials.source})` : ''}: check the user's permissions, or log in again with "berth login ${this.registry}"`,
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
      `registry ${this.registry} requires authentication and berth has no credentials for it: log in with "berth login ${this.registry}" (or pass --creds USER:PASSWORD or --authfile FILE)`,
      { op: 'authenticate', path: this.#url(pathOrUrl), status: 401 },
    );
  }

  #tokenKey(auth: { realm: string; service: string | undefined }, scopes: string[]): string {
    return `${auth.realm}|${auth.service ?? ''}|${scopes.join(' ')}`;
  }

  async #authorization(scopes: string[]): Promise<Record<string, string>> {
    const auth = this.#auth;
    if (auth === undefined) return {};
    if (auth.scheme === 'basic') {
      if (this.#credentials === undefined) return {};
      const { username, password } = this.#credentials;
      return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
    }
    const key = this.#tokenKey(auth, scopes);
    let token = this.#tokens.get(key);
    if (token === undefined) {
      // parallel layer downloads share one token request
      let pending = this.#pendingTokens.get(key);
      if (pending === undefined) {
        pending = this.#fetchToken(auth.realm, auth.service, scopes, key).finally(() =>
          this.#pendingTokens.delete(key),
        );
        this.#pendingTokens.set(key, pending);
      }
      token = await pending;
    }
    return { authorization: `Bearer ${token}` };
  }

  async #fetchToken(
    realm: string,
    service: string | undefined,
    scopes: string[],
    key: string,
  ): Promise<string> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err) {
      throw new ImageError(
        'EAUTH',
        `registry ${this.registry} named a token realm that is not a URL: ${JSON.stringify(realm)}`,
        {
          op: 'fetch token',
          path: realm,
          cause: err,
        },
      );
    }
    if (
      url.protocol === 'http:' &&
      !isLoopbackRegistry(url.host) &&
      !this.#insecure &&
      this.#credentials !== undefined
    ) {
      throw new ImageError(
        'EAUTH',
        `token realm ${realm} is plain HTTP: berth does not send credentials there (mark the registry insecure to allow it)`,
        {
          op: 'fetch token',
          path: realm,
        },
      );
    }
    const headers: Record<string, string> = { 'user-agent': this.#userAgent };
    const creds = this.#credentials;
    let init: { method: string; body?: Uint8Array };
    if (creds?.identityToken) {
      // an identity token is an OAuth2 refresh token (docker login against an OAuth token server)
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: 'berth',
      });
      if (service !== undefined) form.set('service', service);
      form.set('scope', scopes.join(' '));
      headers['content-type'] = 'application/x-www-form-urlencoded';
      init = { method: 'POST', body: Buffer.from(form.toString()) };
    } else {
      if (service !== undefined) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (creds !== undefined) {
        url.searchParams.set('account', creds.username);
        headers['authorization'] =
          `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      }
      init = { method: 'GET' };
    }
    let res: Response;
    try {
      // credentials go to the realm the registry named, and to no host it might redirect to
      res = await this.#transport(url, { ...init, headers, signal: this.#signal ?? null });
    } catch (err) {
      const code = tlsCode(err);
      if (code !== undefined) throw certificateError(url.host, url.toString(), code, this.#tls, err);
      throw this.#networkError(err, 'fetch token', url.toString());
    }
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      throw new ImageError(
        'EAUTH',
        `token service ${url.host} answered with a redirect: berth does not follow it with credentials`,
        {
          op: 'fetch token',
          path: url.origin + url.pathname,
          status: res.status,
        },
      );
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new ImageError(
        'EAUTH',
        creds === undefined
          ? `token service ${url.host} refused anonymous access to ${scopes.join(' ') || 'the registry'}: log in with "berth login ${this.registry}"`
          : `token service ${url.host} rejected the credentials of ${creds.username || 'the identity token'}${creds.source ? ` (from ${creds.source})` : ''}: check them, then "berth login ${this.registry}" again`,
        { op: 'fetch token', path: url.origin + url.pathname, status: res.status },
      );
    }
    if (res.status !== 200) throw await this.#responseError(res, 'fetch token', url.origin + url.pathname);
    let json: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      const body = await readLimited(
        res,
        MAX_TOKEN_RESPONSE_BYTES,
        `token service ${url.host}'s answer`,
        url.origin + url.pathname,
      );
      json = JSON.parse(body.toString('utf8')) as typeof json;
      if (typeof json !== 'object' || json === null) throw new TypeError('not a JSON object');
    } catch (err) {
      if (err instanceof ImageError) throw err;
      throw new ImageError('EAUTH', `token service ${url.host} answered something that is not JSON`, {
        op: 'fetch token',
        path: url.origin + url.pathname,
        cause: err,
      });
    }
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
      // the registry's own trust (certs.d, client certificate) for the registry; the system store elsewhere
      const transport = url.origin === origin ? this.#transport : fetchTransport;
      try {
        res = await transport(url, { method, headers: h, body: body ?? null, signal: this.#signal ?? null });
      } catch (err) {
        const code = tlsCode(err);
        if (code !== undefined && url.origin === origin)
          throw certificateError(this.registry, url.toString(), code, this.#tls, err);
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
      // only the start of the body: a hostile registry's error page cannot exhaust memory
      const text = (await readPrefix(res, MAX_ERROR_BODY_BYTES)).toString('utf8');
      const json = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      const first = json.errors?.[0];
      if (first !== undefined) detail = [first.code?.toLowerCase(), first.message].filter(Boolean).join(': ');
    } catch {
      // registries without a JSON error body still get a useful message from the status
    }
    return this.#statusError(res.status, op, pathOrUrl, detail);
  }
}

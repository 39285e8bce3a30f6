import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type * as Tls from 'node:tls';
import type { TlsSettings } from './tls.js';

// node:https and node:tls (and Node's HTTP client behind them) are loaded by the first registry
// that needs its own trust, not by every program that imports this package: ~15-25 ms of the
// start of `berth run IMAGE` for an image already in the store. A require bundlers leave alone.
const nodeRequire = createRequire(import.meta.url);

export interface TransportInit {
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array | null;
  signal?: AbortSignal | null;
}

/** One HTTP exchange; redirects are never followed (the registry client follows them itself). */
export type Transport = (url: URL, init: TransportInit) => Promise<Response>;

const NULL_BODY = new Set([101, 204, 205, 304]);

/** Node's fetch: the system store, no client certificate. */
export const fetchTransport: Transport = (url, init) =>
  fetch(url, {
    method: init.method,
    headers: init.headers,
    body: init.body ?? null,
    redirect: 'manual',
    signal: init.signal ?? null,
  });

/**
 * HTTPS with a registry's own trust (certs.d CAs on top of the default store, a client certificate, or no
 * verification), as a fetch-like Response; plain-HTTP URLs go to Node's fetch.
 */
export function tlsTransport(tls: TlsSettings): Transport {
  const { Agent, request } = nodeRequire('node:https') as typeof Https;
  const { rootCertificates } = nodeRequire('node:tls') as typeof Tls;
  const agent = new Agent({
    keepAlive: true,
    rejectUnauthorized: tls.verify,
    ...(tls.ca.length > 0 ? { ca: [...rootCertificates, ...tls.ca] } : {}),
    ...(tls.cert !== undefined && tls.key !== undefined ? { cert: tls.cert, key: tls.key } : {}),
  });
  return (url, init) => {
    if (url.protocol !== 'https:') return fetchTransport(url, init);
    return new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        {
          method: init.method,
          headers: init.headers,
          agent,
          ...(init.signal ? { signal: init.signal } : {}),
        },
        (res) => {
          const headers = new Headers();
          const raw = res.rawHeaders;
          for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
          const status = res.statusCode ?? 502;
          if (init.method === 'HEAD' || NULL_BODY.has(status)) {
            res.resume();
            resolve(new Response(null, { status, headers }));
            return;
          }
          resolve(
            new Response(Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>, { status, headers }),
          );
        },
      );
      req.once('error', reject);
      req.end(init.body ? Buffer.from(init.body) : undefined);
    });
  };
}

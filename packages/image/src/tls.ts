import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageError, isErrno } from './errors.js';
import { certsDirs, type RegistrySettings } from './settings.js';

/** The TLS trust for one registry host, as containers-certs.d(5) describes it. */
export interface TlsSettings {
  /** verify the server's certificate (false with --tls-verify=false or an insecure registry) */
  verify: boolean;
  /** extra CA certificates (PEM), trusted on top of the system store */
  ca: string[];
  caFiles: string[];
  /** client certificate and key for mutual TLS */
  cert?: string;
  key?: string;
  certFile?: string;
  /** the directory the files came from, if any */
  dir?: string;
  /** where a user would put the CA for this host: the first certs.d root, or --cert-dir */
  hintDir: string;
}

async function listDir(dir: string): Promise<string[] | undefined> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw new ImageError('ECONFIG', `cannot read certificate directory ${dir}`, {
      op: 'read certificates',
      path: dir,
      cause: err,
    });
  }
}

async function readPem(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ImageError('ECONFIG', `cannot read certificate file ${file}`, {
      op: 'read certificates',
      path: file,
      cause: err,
    });
  }
}

/** Reads `*.crt` CAs and `*.cert` + `*.key` client pairs from `dir` (every .cert needs its .key and back). */
async function readCertDir(dir: string, names: string[], out: TlsSettings): Promise<void> {
  out.dir = dir;
  for (const name of names) {
    const file = join(dir, name);
    if (name.endsWith('.crt')) {
      out.ca.push(await readPem(file));
      out.caFiles.push(file);
    } else if (name.endsWith('.cert')) {
      const keyName = `${name.slice(0, -'.cert'.length)}.key`;
      if (!names.includes(keyName)) {
        throw new ImageError(
          'ECONFIG',
          `client certificate ${file} has no key: expected ${join(dir, keyName)}`,
          {
            op: 'read certificates',
            path: file,
          },
        );
      }
      if (out.cert !== undefined) {
        throw new ImageError(
          'ECONFIG',
          `${dir} holds more than one client certificate (${out.certFile}, ${file})`,
          {
            op: 'read certificates',
            path: dir,
          },
        );
      }
      out.cert = await readPem(file);
      out.key = await readPem(join(dir, keyName));
      out.certFile = file;
    } else if (name.endsWith('.key')) {
      const certName = `${name.slice(0, -'.key'.length)}.cert`;
      if (!names.includes(certName)) {
        throw new ImageError(
          'ECONFIG',
          `client key ${file} has no certificate: expected ${join(dir, certName)}`,
          {
            op: 'read certificates',
            path: file,
          },
        );
      }
    }
  }
}

/**
 * The TLS settings for `host` (HOST[:PORT] as in the reference): `--cert-dir` when given, else the first of
 * ~/.config/containers/certs.d (non-root), /etc/containers/certs.d and /etc/docker/certs.d that has a
 * HOST[:PORT] directory. CAs add to the system store, they never replace it.
 */
export async function loadTlsSettings(
  host: string,
  settings: RegistrySettings | undefined,
  insecure: boolean,
): Promise<TlsSettings> {
  const verify = settings?.tlsVerify !== false && !insecure;
  const roots = certsDirs(settings);
  const out: TlsSettings = {
    verify,
    ca: [],
    caFiles: [],
    hintDir:
      settings?.certDir ??
      join(
        roots.find((r) => r.endsWith('/etc/containers/certs.d')) ?? roots[0] ?? '/etc/containers/certs.d',
        host,
      ),
  };
  if (settings?.certDir !== undefined) {
    const names = await listDir(settings.certDir);
    if (names === undefined) {
      throw new ImageError('ECONFIG', `--cert-dir ${settings.certDir} does not exist`, {
        op: 'read certificates',
        path: settings.certDir,
      });
    }
    await readCertDir(settings.certDir, names, out);
    return out;
  }
  for (const root of roots) {
    const dir = join(root, host);
    const names = await listDir(dir);
    if (names === undefined) continue;
    await readCertDir(dir, names, out);
    out.hintDir = dir;
    break;
  }
  return out;
}

/** True when the TLS settings need their own agent (anything but the system store with verification). */
export function customTls(tls: TlsSettings | undefined): boolean {
  return tls !== undefined && (!tls.verify || tls.ca.length > 0 || tls.cert !== undefined);
}

const CERT_ERRORS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a CA that is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is signed by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is signed by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT: 'its certificate is signed by a CA that is not trusted',
  CERT_UNTRUSTED: 'its certificate is not trusted',
  CERT_SIGNATURE_FAILURE: 'its certificate signature does not verify',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another name',
  HOSTNAME_MISMATCH: 'its certificate is for another name',
};

/** The errno-like code of a fetch or https failure (undici wraps it in `cause`). */
export function tlsCode(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e !== undefined && e !== null && i < 4; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code in CERT_ERRORS) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A certificate error that says what is wrong and what to do about it. */
export function certificateError(
  registry: string,
  url: string,
  code: string,
  tls: TlsSettings | undefined,
  cause: unknown,
): ImageError {
  const what = CERT_ERRORS[code] ?? code;
  const tried = tls?.caFiles.length ? ` (trusted CAs: the system store and ${tls.caFiles.join(', ')})` : '';
  const fix =
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH'
      ? `use the name the certificate was issued for, or --tls-verify=false if you trust the network`
      : code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID'
        ? `renew the registry's certificate (check the clock), or use --tls-verify=false if you trust the network`
        : `put the registry's CA certificate in ${join(tls?.hintDir ?? `/etc/containers/certs.d/${registry}`, 'ca.crt')} (or a directory given with --cert-dir), or use --tls-verify=false if you trust the network`;
  return new ImageError('ETLS', `registry ${registry} at ${url}: ${what} (${code})${tried}: ${fix}`, {
    op: 'verify certificate',
    path: url,
    errno: code,
    cause,
  });
}

/** The server ended the handshake over our client certificate (none, or one it does not accept). */
export function clientCertRefused(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e !== undefined && e !== null && i < 4; i++) {
    const message = (e as { message?: unknown }).message;
    if (
      typeof message === 'string' &&
      /alert (certificate required|bad certificate|unknown ca|certificate unknown)/i.test(message)
    )
      return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export function clientCertificateError(
  registry: string,
  url: string,
  tls: TlsSettings | undefined,
  cause: unknown,
): ImageError {
  const dir = tls?.dir ?? tls?.hintDir ?? `/etc/containers/certs.d/${registry}`;
  const why =
    tls?.certFile !== undefined
      ? `refused the client certificate ${tls.certFile}: use one signed by a CA the registry trusts`
      : `asks for a client certificate: put it and its key in ${join(dir, 'client.cert')} and ${join(dir, 'client.key')} (or in a directory given with --cert-dir)`;
  return new ImageError('ETLS', `registry ${registry} at ${url} ${why}`, {
    op: 'verify certificate',
    path: url,
    cause,
  });
}

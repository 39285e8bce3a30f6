import { rm } from 'node:fs/promises';
import type { Credentials } from './auth.js';
import type { BlobStore } from './blob-store.js';
import { findCredentials } from './credentials.js';
import { assertDigest } from './digest.js';
import { ImageError } from './errors.js';
import type { ProgressListener } from './events.js';
import { ingestBlob } from './ingest.js';
import { lockOwnerAlive, withFileLock } from './lock.js';
import { isIndexType, isManifestType } from './media-types.js';
import { formatPlatform, hostPlatform, parsePlatform, selectPlatform } from './platform.js';
import { formatReference, parseReference, type Reference, repositoryName } from './reference.js';
import { type FetchedManifest, RegistryClient } from './registry.js';
import type { RegistrySettings } from './settings.js';
import type {
  Descriptor,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  ImageRecord,
  LayerRecord,
  Platform,
} from './types.js';

export interface PullOptions extends RegistrySettings {
  /** `linux/arm64/v8` or an object; default: the host's */
  platform?: Platform | string;
  /** the same as `tlsVerify: false`: HTTPS without certificate checks, then plain HTTP (podman's --tls-verify=false) */
  insecure?: boolean;
  /**
   * Explicit credentials (for every endpoint of this pull), or the one auth.json / config.json to read them
   * from (`--authfile`). Default: registries.conf credential-helpers, $REGISTRY_AUTH_FILE, auth.json in
   * $XDG_RUNTIME_DIR, ~/.config/containers/auth.json, then Docker's config.json (see findCredentials).
   */
  auth?: Credentials | { configFile: string };
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** parallel layer downloads, default 3 (docker's and containerd's default) */
  concurrency?: number;
  /**
   * Decompress each layer while it downloads to check its DiffID (default true). A caller that unpacks the
   * layers next, which checks DiffIDs again, passes false and saves one decompression of every layer, as
   * containerd does (it verifies DiffIDs when it unpacks).
   */
  verifyDiffIds?: boolean;
}

/** Content that failed verification is rolled back; anything else (network, abort) keeps its bytes for a resume. */
function failedVerification(err: unknown): boolean {
  if (!(err instanceof ImageError)) return false;
  if (err.code === 'ESIZE') return err.op === 'verify blob';
  return ['EDIGEST', 'EDIFFID', 'EDECOMPRESS', 'EMANIFEST', 'EPLATFORM'].includes(err.code);
}

function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'name' in err && err.name === 'AbortError';
}

function parseJson<T>(body: Buffer, what: string): T {
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (err) {
    throw new ImageError('EMANIFEST', `${what} is not valid json`, { op: 'parse manifest', cause: err });
  }
}

/** The largest image config read (they are kilobytes; a long history makes a few megabytes). */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

function checkDescriptor(d: Descriptor | undefined, what: string): Descriptor {
  if (
    d === undefined ||
    typeof d.digest !== 'string' ||
    typeof d.size !== 'number' ||
    typeof d.mediaType !== 'string'
  ) {
    throw new ImageError(
      'EMANIFEST',
      `manifest ${what} is not a descriptor with mediaType, digest and size`,
      {
        op: 'parse manifest',
      },
    );
  }
  assertDigest(d.digest, what);
  return d;
}

/** Runs fn over items, `limit` at a time; after the first failure no new item starts and running ones are told to stop. */
async function runLimited<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  stop: () => void,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        if (failure === undefined) {
          failure = { err };
          stop();
        }
      }
    }
  });
  await Promise.all(workers);
  if (failure !== undefined) throw failure.err;
}

export async function pullImage(
  store: BlobStore,
  refString: string,
  options: PullOptions = {},
): Promise<ImageRecord> {
  parseReference(refString);
  const emit = options.onProgress ?? (() => {});
  const want =
    typeof options.platform === 'string'
      ? parsePlatform(options.platform)
      : (options.platform ?? hostPlatform());
  // one failed layer stops the others: their partial files stay for a resume
  const internal = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, internal.signal]) : internal.signal;
  emit({ type: 'resolving', ref: refString });
  const found = await findImage(refString, options, signal);
  const { ref, client, first } = found;
  const name = formatReference(found.name);
  const logical = found.name;

  let manifestBlob = first;
  let indexBlob: typeof first | undefined;
  let platform: Platform | undefined;
  if (isIndexType(first.mediaType)) {
    indexBlob = first;
    const index = parseJson<ImageIndex>(first.body, `index ${name}`);
    if (!Array.isArray(index.manifests)) {
      throw new ImageError('EMANIFEST', `index ${name} has no manifests array`, { op: 'parse manifest' });
    }
    const chosen = selectPlatform(
      index.manifests.filter((m) => isManifestType(m.mediaType) || m.mediaType === undefined),
      want,
    );
    checkDescriptor(chosen, 'index manifests[]');
    platform = chosen.platform;
    manifestBlob = await client.getManifest(ref.repository, chosen.digest);
  }
  if (!isManifestType(manifestBlob.mediaType)) {
    const why = manifestBlob.mediaType.includes('v1+')
      ? 'docker schema 1 manifests are not supported'
      : `unsupported media type ${JSON.stringify(manifestBlob.mediaType)}`;
    throw new ImageError('EMANIFEST', `manifest ${name}: ${why}`, { op: 'fetch manifest', path: name });
  }
  const manifest = parseJson<ImageManifest>(manifestBlob.body, `manifest ${name}`);
  const configDesc = checkDescriptor(manifest.config, 'config');
  // read whole into memory: a size the manifest claims is no reason to hold gigabytes
  if (configDesc.size > MAX_CONFIG_BYTES)
    throw new ImageError(
      'ESIZE',
      `image ${name}: config ${configDesc.digest} is ${configDesc.size} bytes, more than ${MAX_CONFIG_BYTES}: refused`,
      { op: 'verify config', path: configDesc.digest },
    );
  if (!Array.isArray(manifest.layers)) {
    throw new ImageError('EMANIFEST', `manifest ${name} has no layers array`, { op: 'parse manifest' });
  }
  const layers = manifest.layers.map((l, i) => checkDescriptor(l, `layers[${i}]`));

  const digests = [manifestBlob.digest, configDesc.digest, ...layers.map((l) => l.digest)];
  if (indexBlob !== undefined) digests.push(indexBlob.digest);
  const release = await store.lease(digests);
  const added: string[] = [];
  try {
    let configBody: Buffer;
    if (await store.hasBlob(configDesc.digest, configDesc.size)) {
      configBody = await store.readBlob(configDesc.digest);
    } else {
      configBody = await client.getBlobBuffer(ref.repository, configDesc.digest, configDesc.size, 'config');
    }
    const config = parseJson<ImageConfig>(configBody, `config ${configDesc.digest}`);
    const diffIds = config.rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== layers.length) {
      throw new ImageError(
        'EMANIFEST',
        `image ${name}: config lists ${diffIds?.length ?? 0} diff_ids for ${layers.length} layers`,
        { op: 'verify config', path: configDesc.digest },
      );
    }
    for (const [i, d] of diffIds.entries()) assertDigest(d, `rootfs.diff_ids[${i}]`);
    if (platform === undefined) {
      platform = { os: config.os, architecture: config.architecture };
      if (config.variant !== undefined) platform.variant = config.variant;
      if (
        options.platform !== undefined &&
        (platform.os !== want.os || platform.architecture !== want.architecture)
      ) {
        throw new ImageError(
          'EPLATFORM',
          `image ${name} is ${formatPlatform(platform)}, not ${formatPlatform(want)}`,
          {
            op: 'select platform',
          },
        );
      }
    }
    const totalBytes = layers.reduce((n, l) => n + l.size, 0);
    emit({
      type: 'resolved',
      ref: name,
      digest: manifestBlob.digest,
      layers: layers.map((l) => ({ digest: l.digest, size: l.size })),
      totalBytes,
    });

    const unique = [...new Map(layers.map((l, i) => [l.digest, { desc: l, diffId: diffIds[i]! }])).values()];
    await runLimited(
      unique,
      options.concurrency ?? 3,
      async ({ desc, diffId }) => {
        if (await store.hasBlob(desc.digest, desc.size)) {
          emit({ type: 'layer-exists', digest: desc.digest, size: desc.size });
          return;
        }
        await withFileLock(
          store.lockPath(desc.digest),
          async () => {
            // another pull may have finished this layer while we waited for the lock
            if (await store.hasBlob(desc.digest, desc.size)) {
              emit({ type: 'layer-exists', digest: desc.digest, size: desc.size });
              return;
            }
            let last = 0;
            await ingestBlob({
              digest: desc.digest,
              size: desc.size,
              target: store.blobPath(desc.digest),
              partial: store.partialPath(desc.digest),
              ...(options.verifyDiffIds === false ? {} : { diffId }),
              open: (offset) => client.getBlob(ref.repository, desc.digest, offset),
              onStart: (offset) =>
                emit({ type: 'layer-start', digest: desc.digest, size: desc.size, offset }),
              onBytes: (bytes) => {
                // one event per 64 KiB is plenty for a display and cheap for the event loop
                if (bytes - last >= 65536 || bytes === desc.size) {
                  last = bytes;
                  emit({ type: 'layer-progress', digest: desc.digest, size: desc.size, bytes });
                }
              },
            });
            added.push(desc.digest);
            emit({ type: 'layer-done', digest: desc.digest, size: desc.size });
          },
          signal,
        );
      },
      () => internal.abort(),
    );
    for (const [blob, digest] of [
      [configBody, configDesc.digest],
      [manifestBlob.body, manifestBlob.digest],
      ...(indexBlob ? [[indexBlob.body, indexBlob.digest] as const] : []),
    ] as const) {
      if (!(await store.hasBlob(digest))) added.push(digest);
      await store.writeBlob(blob, digest);
    }
    const layerRecords: LayerRecord[] = layers.map((l, i) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      diffId: diffIds[i]!,
    }));
    const record: ImageRecord = {
      name,
      repository: repositoryName(logical),
      digest: manifestBlob.digest,
      manifestMediaType: manifestBlob.mediaType,
      platform,
      config: { mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size },
      layers: layerRecords,
      size: manifestBlob.body.length + configDesc.size + totalBytes,
      storedAt: new Date().toISOString(),
    };
    if (logical.tag !== undefined) record.tag = logical.tag;
    if (indexBlob !== undefined) record.indexDigest = indexBlob.digest;
    if (config.created !== undefined) record.created = config.created;
    await store.putRecord(record);
    emit({ type: 'done', ref: name, digest: record.digest, size: record.size });
    await release();
    return record;
  } catch (err) {
    await release();
    if (failedVerification(err)) {
      // a pull that failed verification leaves nothing of itself behind, but never takes what others reference
      const keep = await store.referencedDigests();
      for (const d of added) if (!keep.has(d)) await rm(store.blobPath(d), { force: true });
      // layers this pull stopped itself are not worth resuming either, unless another pull now owns them
      for (const l of layers) {
        if (!(await lockOwnerAlive(store.lockPath(l.digest))))
          await rm(store.partialPath(l.digest), { force: true });
      }
    }
    if (isAbort(err) || (options.signal?.aborted && !(err instanceof ImageError))) {
      throw new ImageError('EABORT', `pull ${name}: aborted; run it again to resume`, {
        op: 'pull',
        path: name,
        cause: err,
      });
    }
    throw err;
  }
}

interface FoundImage {
  /** the name the image is stored under: what the user typed, after alias or search resolution */
  name: Reference;
  /** where it was found (a mirror or the primary location) */
  ref: Reference;
  client: RegistryClient;
  first: FetchedManifest;
}

function describeEndpoint(e: { ref: Reference; mirror: boolean }): string {
  return `${e.mirror ? 'mirror ' : ''}${formatReference(e.ref)}`;
}

/**
 * Resolves what the user typed (registries.conf aliases and search registries, blocked registries, mirrors)
 * and fetches the first manifest from the first endpoint that has it. registries.conf and the TOML parser are
 * read only here, and only when a file exists.
 */
async function findImage(refString: string, options: PullOptions, signal: AbortSignal): Promise<FoundImage> {
  const conf = await import('./registries-conf.js');
  const { loadTlsSettings } = await import('./tls.js');
  const config = await conf.loadRegistriesConfig(options);
  const insecureFlag = options.insecure === true || options.tlsVerify === false;
  const resolution = conf.resolveShortName(config, refString);
  const failures: { what: string; err: unknown }[] = [];
  for (const candidate of resolution.candidates) {
    const endpoints = conf.pullEndpoints(config, candidate, insecureFlag);
    for (const endpoint of endpoints) {
      const er = endpoint.ref;
      try {
        let credentials: Credentials | undefined;
        if (options.auth !== undefined && 'username' in options.auth) credentials = options.auth;
        else {
          credentials = await findCredentials(er.registry, er.repository, {
            ...options,
            ...(options.auth !== undefined ? { authFile: options.auth.configFile } : {}),
            credentialHelpers: config.credentialHelpers,
          });
        }
        const tls = await loadTlsSettings(er.registry, options, endpoint.insecure);
        const client = new RegistryClient({
          registry: er.registry,
          insecure: endpoint.insecure,
          tls,
          ...(credentials !== undefined ? { credentials } : {}),
          signal,
        });
        await client.probe();
        const first = await client.getManifest(er.repository, er.digest ?? er.tag ?? 'latest');
        return { name: candidate, ref: er, client, first };
      } catch (err) {
        if (isAbort(err) || signal.aborted) throw err;
        // a broken manifest is an answer, not an absence: trying elsewhere would hide it
        if (err instanceof ImageError && ['EDIGEST', 'EMANIFEST', 'ECONFIG'].includes(err.code)) throw err;
        failures.push({ what: describeEndpoint(endpoint), err });
      }
    }
  }
  if (failures.length === 1) throw failures[0]!.err;
  const allMissing = failures.every((f) => f.err instanceof ImageError && f.err.code === 'ENOTFOUND');
  const last = failures[failures.length - 1]?.err;
  const via =
    resolution.via === 'search'
      ? ` (short name resolved through unqualified-search-registries in ${config.files.join(', ')})`
      : resolution.via === 'alias'
        ? ` (alias from ${resolution.file})`
        : '';
  throw new ImageError(
    allMissing ? 'ENOTFOUND' : last instanceof ImageError ? last.code : 'EREGISTRY',
    `pull ${refString}${via}: every place failed: ${failures.map((f) => `${f.what}: ${f.err instanceof Error ? f.err.message : String(f.err)}`).join('; ')}`,
    { op: 'pull', path: refString, cause: last },
  );
}

import { assertDigest } from './digest.js';
import { ImageError } from './errors.js';

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';

export interface Reference {
  /** registry as users write it: docker.io, localhost:5000, quay.io */
  registry: string;
  /** repository path inside the registry: library/busybox */
  repository: string;
  tag?: string;
  digest?: string;
}

// docker/distribution's reference grammar, without the parts we never meet (uppercase is an error, not a hint)
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DOMAIN_RE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

function fail(ref: string, why: string): never {
  throw new ImageError('EREF', `image reference ${JSON.stringify(ref)}: ${why}`, { op: 'parse reference' });
}

/**
 * Docker-style normalisation, so `busybox` means what users expect:
 * `busybox` → docker.io/library/busybox:latest, `localhost:5000/a/b@sha256:…` keeps its registry.
 */
export function parseReference(ref: string): Reference {
  if (ref.length === 0) fail(ref, 'is empty');
  if (ref.length > 4096) fail(ref, 'is too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      assertDigest(digest);
    } catch {
      fail(ref, `digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>`);
    }
  }
  let registry = DEFAULT_REGISTRY;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!DOMAIN_RE.test(first)) fail(ref, `registry ${JSON.stringify(first)} is not a valid host`);
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail(ref, `tag ${JSON.stringify(tag)} is not valid`);
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !rest.includes('/')) rest = `library/${rest}`;
  if (!REPOSITORY_RE.test(rest)) {
    fail(ref, `repository ${JSON.stringify(rest)} must be lowercase letters, digits and separators`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const out: Reference = { registry, repository: rest };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** docker.io/library/busybox */
export function repositoryName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The full canonical form: docker.io/library/busybox:latest, with `@digest` when there is one. */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The short form users type and `docker images` shows: busybox, quay.io/x/y. */
export function familiarName(ref: Reference): string {
  if (ref.registry !== DEFAULT_REGISTRY) return repositoryName(ref);
  return ref.repository.startsWith('library/') ? ref.repository.slice('library/'.length) : ref.repository;
}

/** docker.io is an alias: the API lives on registry-1.docker.io. */
export function registryApiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;
}

export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

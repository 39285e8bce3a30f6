import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageError, isErrno } from './errors.js';
import { DEFAULT_REGISTRY, parseReference, type Reference } from './reference.js';
import { envOf, homeOf, type RegistrySettings, systemPath } from './settings.js';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';
export type ShortNameMode = 'enforcing' | 'permissive' | 'disabled';

export interface MirrorConfig {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryConfig {
  /** the image-name prefix this table applies to: host[:port][/namespace…], or *.example.com */
  prefix: string;
  /** where the prefix-rooted namespace really lives; '' for a wildcard prefix without one */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: MirrorConfig[];
  /** the file that defined it, for messages */
  file: string;
}

/** registries.conf (v2) with its drop-ins merged, as containers-registries.conf(5) and .d(5) define them. */
export interface RegistriesConfig {
  unqualifiedSearchRegistries: string[];
  shortNameMode: ShortNameMode;
  /** short name → fully-qualified name (no tag, no digest) */
  aliases: Record<string, string>;
  /** where each alias came from, for messages */
  aliasFiles: Record<string, string>;
  registries: RegistryConfig[];
  /** containers-auth.json (auth files) and docker-credential-NAME helpers, in order */
  credentialHelpers: string[];
  /** the files read, in order; empty when nothing is configured */
  files: string[];
}

export function emptyRegistriesConfig(): RegistriesConfig {
  return {
    unqualifiedSearchRegistries: [],
    shortNameMode: 'permissive',
    aliases: {},
    aliasFiles: {},
    registries: [],
    credentialHelpers: ['containers-auth.json'],
    files: [],
  };
}

function bad(file: string, path: string, why: string): never {
  throw new ImageError('ECONFIG', `${file}: ${path} ${why}`, { op: 'read registries.conf', path: file });
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function str(file: string, path: string, v: unknown): string {
  if (typeof v !== 'string') bad(file, path, 'must be a string');
  return v;
}

function bool(file: string, path: string, v: unknown): boolean {
  if (typeof v !== 'boolean') bad(file, path, 'must be true or false');
  return v;
}

function strings(file: string, path: string, v: unknown): string[] {
  if (!Array.isArray(v)) bad(file, path, 'must be an array of strings');
  return v.map((x, i) => str(file, `${path}[${i}]`, x));
}

function known(file: string, path: string, t: Table, keys: string[]): void {
  for (const k of Object.keys(t)) {
    if (!keys.includes(k))
      bad(
        file,
        path ? `${path}.${k}` : k,
        `is not a registries.conf setting berth knows (known: ${keys.join(', ')})`,
      );
  }
}

const HOST_RE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

/** host[:port][/namespace…], without a scheme, tag or digest; trailing slashes dropped. */
function location(file: string, path: string, v: string, allowWildcard: boolean): string {
  let s = v.trim();
  if (/^[a-z]+:\/\//i.test(s))
    bad(file, path, `${JSON.stringify(v)} must not have a scheme (write host[:port][/namespace])`);
  s = s.replace(/\/+$/, '');
  if (allowWildcard && s.startsWith('*.')) {
    if (!HOST_RE.test(s.slice(2)) || s.includes('/'))
      bad(file, path, `${JSON.stringify(v)} is not a valid *.domain wildcard`);
    return s;
  }
  const host = s.split('/')[0] ?? '';
  if (s.length === 0 || !HOST_RE.test(host))
    bad(file, path, `${JSON.stringify(v)} is not host[:port][/namespace]`);
  return s;
}

/** Merges one parsed file into `into` (later files win: search list and mode replace, registries by prefix, aliases by name). */
function mergeFile(into: RegistriesConfig, file: string, doc: Table): void {
  if (isTable(doc['registries']) || Array.isArray(doc['registries'])) {
    bad(
      file,
      'registries',
      'is the version 1 format, which berth does not read: convert it to version 2 ([[registry]] tables, see containers-registries.conf(5))',
    );
  }
  known(file, '', doc, [
    'unqualified-search-registries',
    'short-name-mode',
    'credential-helpers',
    'aliases',
    'registry',
    'additional-layer-store-auth-helper',
  ]);
  if (
    doc['additional-layer-store-auth-helper'] !== undefined &&
    doc['additional-layer-store-auth-helper'] !== ''
  ) {
    bad(
      file,
      'additional-layer-store-auth-helper',
      'is not supported by berth (it has no additional layer stores)',
    );
  }
  if (doc['unqualified-search-registries'] !== undefined) {
    into.unqualifiedSearchRegistries = strings(
      file,
      'unqualified-search-registries',
      doc['unqualified-search-registries'],
    ).map((r, i) => {
      const l = location(file, `unqualified-search-registries[${i}]`, r, false);
      if (l.includes('/'))
        bad(
          file,
          `unqualified-search-registries[${i}]`,
          `${JSON.stringify(r)} must be host[:port] without a namespace`,
        );
      return l;
    });
  }
  if (doc['short-name-mode'] !== undefined) {
    const m = str(file, 'short-name-mode', doc['short-name-mode']);
    if (m !== '') {
      if (m !== 'enforcing' && m !== 'permissive' && m !== 'disabled')
        bad(file, 'short-name-mode', `must be enforcing, permissive or disabled, not ${JSON.stringify(m)}`);
      into.shortNameMode = m;
    }
  }
  if (doc['credential-helpers'] !== undefined) {
    const list = strings(file, 'credential-helpers', doc['credential-helpers']);
    for (const [i, h] of list.entries()) {
      if (!/^[A-Za-z0-9._-]+$/.test(h))
        bad(file, `credential-helpers[${i}]`, `${JSON.stringify(h)} is not a helper name`);
    }
    into.credentialHelpers = list.length > 0 ? list : ['containers-auth.json'];
  }
  if (doc['aliases'] !== undefined) {
    if (!isTable(doc['aliases']))
      bad(file, 'aliases', 'must be a table of "short-name" = "registry/repository"');
    for (const [name, value] of Object.entries(doc['aliases'])) {
      const path = `aliases.${JSON.stringify(name)}`;
      const v = str(file, path, value);
      if (!isShortName(name) || /[:@]/.test(name))
        bad(file, path, 'must be a short name without registry, tag or digest');
      if (v === '') {
        delete into.aliases[name];
        delete into.aliasFiles[name];
        continue;
      }
      if (isShortName(v))
        bad(file, path, `value ${JSON.stringify(v)} must be a fully-qualified name (registry/repository)`);
      let parsed: Reference;
      try {
        parsed = parseReference(v);
      } catch (err) {
        bad(file, path, `value: ${(err as Error).message}`);
      }
      if (parsed.digest !== undefined || v.slice(v.indexOf('/')).includes(':'))
        bad(file, path, `value ${JSON.stringify(v)} must not have a tag or digest`);
      into.aliases[name] = `${parsed.registry}/${parsed.repository}`;
      into.aliasFiles[name] = file;
    }
  }
  if (doc['registry'] !== undefined) {
    if (!Array.isArray(doc['registry'])) bad(file, 'registry', 'must be an array of tables ([[registry]])');
    const seen = new Set<string>();
    for (const [i, t] of (doc['registry'] as unknown[]).entries()) {
      const path = `registry[${i}]`;
      if (!isTable(t)) bad(file, path, 'must be a table');
      known(file, path, t, ['prefix', 'location', 'insecure', 'blocked', 'mirror-by-digest-only', 'mirror']);
      const loc = t['location'] === undefined ? '' : str(file, `${path}.location`, t['location']);
      const pre = t['prefix'] === undefined ? '' : str(file, `${path}.prefix`, t['prefix']);
      if (pre === '' && loc === '') bad(file, path, 'needs a location or a prefix');
      const prefix = location(file, `${path}.prefix`, pre === '' ? loc : pre, true);
      if (!prefix.startsWith('*.') && loc === '')
        bad(file, `${path}.location`, 'is needed unless the prefix is a *.domain wildcard');
      const reg: RegistryConfig = {
        prefix,
        location: loc === '' ? '' : location(file, `${path}.location`, loc, false),
        insecure: t['insecure'] === undefined ? false : bool(file, `${path}.insecure`, t['insecure']),
        blocked: t['blocked'] === undefined ? false : bool(file, `${path}.blocked`, t['blocked']),
        mirrorByDigestOnly:
          t['mirror-by-digest-only'] === undefined
            ? false
            : bool(file, `${path}.mirror-by-digest-only`, t['mirror-by-digest-only']),
        mirrors: [],
        file,
      };
      if (t['mirror'] !== undefined) {
        if (!Array.isArray(t['mirror']))
          bad(file, `${path}.mirror`, 'must be an array of tables ([[registry.mirror]])');
        for (const [j, m] of (t['mirror'] as unknown[]).entries()) {
          const mp = `${path}.mirror[${j}]`;
          if (!isTable(m)) bad(file, mp, 'must be a table');
          known(file, mp, m, ['location', 'insecure', 'pull-from-mirror']);
          if (m['location'] === undefined) bad(file, `${mp}.location`, 'is required');
          const pfm =
            m['pull-from-mirror'] === undefined
              ? 'all'
              : str(file, `${mp}.pull-from-mirror`, m['pull-from-mirror']);
          if (pfm !== 'all' && pfm !== 'digest-only' && pfm !== 'tag-only' && pfm !== '') {
            bad(
              file,
              `${mp}.pull-from-mirror`,
              `must be all, digest-only or tag-only, not ${JSON.stringify(pfm)}`,
            );
          }
          if (reg.mirrorByDigestOnly && pfm !== 'all' && pfm !== '') {
            bad(file, `${mp}.pull-from-mirror`, 'cannot be combined with mirror-by-digest-only = true');
          }
          reg.mirrors.push({
            location: location(file, `${mp}.location`, str(file, `${mp}.location`, m['location']), false),
            insecure: m['insecure'] === undefined ? false : bool(file, `${mp}.insecure`, m['insecure']),
            pullFromMirror: reg.mirrorByDigestOnly ? 'digest-only' : pfm === '' ? 'all' : pfm,
          });
        }
      }
      if (seen.has(reg.prefix))
        bad(file, `${path}.prefix`, `${JSON.stringify(reg.prefix)} is defined twice in this file`);
      seen.add(reg.prefix);
      const at = into.registries.findIndex((r) => r.prefix === reg.prefix);
      if (at >= 0) into.registries[at] = reg;
      else into.registries.push(reg);
    }
  }
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw new ImageError('ECONFIG', `cannot read ${file}`, {
      op: 'read registries.conf',
      path: file,
      cause: err,
    });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The files berth reads, in order: the main file, then each drop-in directory's *.conf in name order. */
async function configFiles(
  s: RegistrySettings | undefined,
): Promise<{ main: string; mainExplicit: boolean; dirs: string[] }> {
  const env = envOf(s);
  const userFile = join(homeOf(s), '.config', 'containers', 'registries.conf');
  const userDir = join(homeOf(s), '.config', 'containers', 'registries.conf.d');
  const explicit = s?.registriesConf ?? env['CONTAINERS_REGISTRIES_CONF'] ?? env['REGISTRIES_CONFIG_PATH'];
  if (explicit !== undefined && explicit !== '') {
    return {
      main: explicit,
      mainExplicit: true,
      dirs: [s?.registriesConfDir ?? systemPath(s, '/etc/containers/registries.conf.d')],
    };
  }
  if (s?.configRoot === undefined && !env['BERTH_CONFIG_ROOT'] && (await exists(userFile))) {
    return { main: userFile, mainExplicit: false, dirs: [s?.registriesConfDir ?? userDir] };
  }
  const dirs =
    s?.registriesConfDir !== undefined
      ? [s.registriesConfDir]
      : [systemPath(s, '/etc/containers/registries.conf.d')];
  if (s?.registriesConfDir === undefined && s?.configRoot === undefined && !env['BERTH_CONFIG_ROOT'])
    dirs.push(userDir);
  return { main: systemPath(s, '/etc/containers/registries.conf'), mainExplicit: false, dirs };
}

/**
 * Reads registries.conf and its drop-ins. The TOML parser is loaded only when there is a file to parse, so a
 * machine without registries.conf pays nothing for it.
 */
export async function loadRegistriesConfig(s?: RegistrySettings): Promise<RegistriesConfig> {
  const out = emptyRegistriesConfig();
  const { main, mainExplicit, dirs } = await configFiles(s);
  const texts: [string, string][] = [];
  const mainText = await readText(main);
  if (mainText === undefined && mainExplicit) {
    throw new ImageError('ECONFIG', `registries.conf ${main} does not exist`, {
      op: 'read registries.conf',
      path: main,
    });
  }
  if (mainText !== undefined) texts.push([main, mainText]);
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.conf')).sort();
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) continue;
      throw new ImageError('ECONFIG', `cannot read ${dir}`, {
        op: 'read registries.conf',
        path: dir,
        cause: err,
      });
    }
    for (const n of names) {
      const text = await readText(join(dir, n));
      if (text !== undefined) texts.push([join(dir, n), text]);
    }
  }
  if (texts.length === 0) return out;
  const { parse } = await import('smol-toml');
  for (const [file, text] of texts) mergeText(out, file, text, parse);
  return out;
}

/** One file's text parsed (a TOML error names the file) and merged into `out`. */
function mergeText(
  out: RegistriesConfig,
  file: string,
  text: string,
  parse: (text: string) => unknown,
): void {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (err) {
    throw new ImageError('ECONFIG', `${file} is not valid TOML: ${(err as Error).message.split('\n')[0]}`, {
      op: 'read registries.conf',
      path: file,
      cause: err,
    });
  }
  mergeFile(out, file, doc);
  out.files.push(file);
}

/** Parses registries.conf text (for tests and tools): the same rules as the files berth reads. */
export async function parseRegistriesConfig(
  text: string,
  file = 'registries.conf',
): Promise<RegistriesConfig> {
  const { parse } = await import('smol-toml');
  const out = emptyRegistriesConfig();
  mergeText(out, file, text, parse);
  return out;
}

/** A name with no registry part: `busybox`, `org/app:1`; not `quay.io/org/app` or `localhost/app`. */
export function isShortName(ref: string): boolean {
  const slash = ref.indexOf('/');
  if (slash < 0) return true;
  const first = ref.slice(0, slash);
  return !(first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['));
}

/** `docker.io/library/busybox:1` from a reference; the name containers-registries.conf prefixes match against. */
function nameOf(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

function matchesPrefix(name: string, prefix: string): boolean {
  if (prefix.startsWith('*.')) {
    const host = name.split('/')[0]!.replace(/:[0-9]+$/, '');
    return host.endsWith(prefix.slice(1));
  }
  if (!name.startsWith(prefix)) return false;
  const next = name[prefix.length];
  return next === undefined || next === '/' || next === ':' || next === '@';
}

/** The [[registry]] table with the longest prefix matching `ref` (tag and digest count, as in podman). */
export function findRegistry(config: RegistriesConfig, ref: Reference): RegistryConfig | undefined {
  let full = nameOf(ref);
  if (ref.tag !== undefined) full += `:${ref.tag}`;
  if (ref.digest !== undefined) full += `@${ref.digest}`;
  let best: RegistryConfig | undefined;
  let bestLen = -1;
  for (const r of config.registries) {
    if (!matchesPrefix(full, r.prefix)) continue;
    // a wildcard is less specific than any exact prefix of the same length
    const len = r.prefix.startsWith('*.') ? r.prefix.length - 1 : r.prefix.length;
    if (len > bestLen) {
      best = r;
      bestLen = len;
    }
  }
  return best;
}

/** One place to try a pull: a mirror or the primary location. */
export interface PullEndpoint {
  /** the reference at this endpoint (its registry and repository after prefix rewriting) */
  ref: Reference;
  insecure: boolean;
  mirror: boolean;
}

function rewrite(ref: Reference, prefix: string, loc: string): Reference {
  let full = nameOf(ref);
  if (ref.tag !== undefined) full += `:${ref.tag}`;
  if (ref.digest !== undefined) full += `@${ref.digest}`;
  let out: string;
  if (prefix.startsWith('*.')) {
    // a wildcard table rewrites the host only
    const slash = full.indexOf('/');
    out = loc + full.slice(slash);
  } else {
    out = loc + full.slice(prefix.length);
  }
  const r = parseReference(out);
  // the user's tag or digest, not a default added by parsing
  const res: Reference = { registry: r.registry, repository: r.repository };
  if (ref.tag !== undefined) res.tag = ref.tag;
  if (ref.digest !== undefined) res.digest = ref.digest;
  return res;
}

/**
 * Where to pull `ref` from, in order: the mirrors that apply (pull-from-mirror, mirror-by-digest-only), then the
 * primary location. A blocked registry is an error that names the file that blocks it.
 */
export function pullEndpoints(
  config: RegistriesConfig,
  ref: Reference,
  insecureFlag = false,
): PullEndpoint[] {
  const reg = findRegistry(config, ref);
  if (reg === undefined) return [{ ref, insecure: insecureFlag, mirror: false }];
  if (reg.blocked) {
    throw new ImageError(
      'EBLOCKED',
      `registry ${nameOf(ref)} is blocked by [[registry]] prefix=${JSON.stringify(reg.prefix)} in ${reg.file}`,
      { op: 'resolve image', path: reg.file },
    );
  }
  const out: PullEndpoint[] = [];
  const byDigest = ref.digest !== undefined;
  for (const m of reg.mirrors) {
    if (m.pullFromMirror === 'digest-only' && !byDigest) continue;
    if (m.pullFromMirror === 'tag-only' && byDigest) continue;
    out.push({
      ref: rewrite(ref, reg.prefix, m.location),
      insecure: m.insecure || insecureFlag,
      mirror: true,
    });
  }
  const primary = reg.location === '' ? ref : rewrite(ref, reg.prefix, reg.location);
  out.push({ ref: primary, insecure: reg.insecure || insecureFlag, mirror: false });
  return out;
}

/** Whether registries.conf marks this host[:port] insecure (its own [[registry]] table, location matched). */
export function registryInsecure(config: RegistriesConfig, registry: string): boolean {
  const reg = findRegistry(config, { registry, repository: 'x' });
  return reg?.insecure === true;
}

/** How a short name resolved: the fully-qualified candidates in order and why. */
export interface ShortNameResolution {
  candidates: Reference[];
  /** 'alias' (from a file), 'search' (unqualified-search-registries) or 'default' (docker.io, as Docker does) */
  via: 'alias' | 'search' | 'default' | 'qualified';
  /** the file of the alias, when via is alias */
  file?: string;
}

/**
 * Resolves what the user typed into fully-qualified candidates: a qualified name is itself; a short name goes
 * through [aliases], else unqualified-search-registries (with short-name-mode: berth never prompts, so
 * `enforcing` with more than one candidate is an error), else docker.io as Docker does, so `busybox` means what
 * it always meant when nothing is configured.
 */
export function resolveShortName(config: RegistriesConfig, input: string): ShortNameResolution {
  const parsed = parseReference(input);
  if (!isShortName(input)) return { candidates: [parsed], via: 'qualified' };
  const withTag = (registry: string, repository: string): Reference => {
    const r = parseReference(`${registry}/${repository}`);
    const out: Reference = { registry: r.registry, repository: r.repository };
    if (parsed.tag !== undefined) out.tag = parsed.tag;
    if (parsed.digest !== undefined) out.digest = parsed.digest;
    return out;
  };
  // the short name as written, without tag or digest (docker.io's library/ is not part of it)
  const name =
    parsed.registry === DEFAULT_REGISTRY &&
    parsed.repository.startsWith('library/') &&
    !input.startsWith('library/')
      ? parsed.repository.slice('library/'.length)
      : parsed.repository;
  if (config.shortNameMode !== 'disabled') {
    const alias = config.aliases[name];
    if (alias !== undefined) {
      const slash = alias.indexOf('/');
      const res: ShortNameResolution = {
        candidates: [withTag(alias.slice(0, slash), alias.slice(slash + 1))],
        via: 'alias',
      };
      const file = config.aliasFiles[name];
      if (file !== undefined) res.file = file;
      return res;
    }
  }
  const search = config.unqualifiedSearchRegistries;
  if (search.length === 0) return { candidates: [parsed], via: 'default' };
  if (search.length > 1 && config.shortNameMode === 'enforcing') {
    throw new ImageError(
      'EREF',
      `short name ${JSON.stringify(input)} is ambiguous: short-name-mode is enforcing and it could come from ${search.join(', ')}; berth does not prompt: use a fully-qualified name (${search[0]}/${name}) or add an alias to [aliases] in registries.conf`,
      { op: 'resolve image', path: input },
    );
  }
  return { candidates: search.map((r) => withTag(r, name)), via: 'search' };
}

import { posix } from 'node:path';
import { ImageRootfsError } from './errors.js';

function unsafe(name: string, why: string): ImageRootfsError {
  return new ImageRootfsError('EUNSAFE', `layer entry ${JSON.stringify(name)}: ${why}`, {
    op: 'unpack layer',
    path: name,
  });
}

/**
 * The path a tar entry names, relative to the layer root, or an error. Absolute names and any `..` are refused
 * outright rather than clamped: a layer that tries either is malformed or hostile, and unpacking half of it
 * would hide that.
 */
export function entryPath(name: string): string {
  if (name.includes('\0')) throw unsafe(name, 'contains a nul byte');
  if (name.startsWith('/')) throw unsafe(name, 'is an absolute path');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe(name, 'climbs out of the layer with ..');
  return parts.length === 0 ? '.' : posix.join(...parts);
}

/** Hard link targets are archive paths too; some writers give them a leading slash, which means the layer root. */
export function linkTargetPath(entryName: string, linkname: string): string {
  const parts = linkname.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw unsafe(entryName, `hard link target ${JSON.stringify(linkname)} climbs out of the layer`);
  if (parts.length === 0) throw unsafe(entryName, 'hard link has an empty target');
  return posix.join(...parts);
}

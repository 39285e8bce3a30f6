import { openArchive } from './archive-source.js';
import { loadFromSource, saveDockerArchive } from './docker-archive.js';
import { ImageError } from './errors.js';
import { type ArchiveFormat, exportLayout, type ImportOptions } from './layout.js';
import type { ImageStore } from './store.js';
import type { ImageRecord } from './types.js';

/**
 * `berth load`: an OCI layout directory, an OCI archive or a `docker save` archive, told apart by what they
 * contain (manifest.json means docker), not by their names.
 */
export async function loadImages(
  store: ImageStore,
  source: string,
  options: ImportOptions = {},
): Promise<ImageRecord[]> {
  const src = await openArchive(store, source);
  try {
    return await loadFromSource(store, src, options);
  } finally {
    await src.close();
  }
}

/** `berth save`: the images named by `refs` in one of the three formats. */
export async function saveImages(
  store: ImageStore,
  refs: string[],
  target: string,
  format: ArchiveFormat = 'oci-archive',
): Promise<ImageRecord[]> {
  switch (format) {
    case 'oci-archive':
    case 'oci-dir':
      return exportLayout(store, refs, target, { format });
    case 'docker-archive':
      return saveDockerArchive(store, refs, target);
    default:
      throw new ImageError(
        'EARCHIVE',
        `format ${JSON.stringify(format)} must be oci-archive, oci-dir or docker-archive`,
        { op: 'save image', path: target },
      );
  }
}

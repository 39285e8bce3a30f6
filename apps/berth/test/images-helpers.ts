import type { SpawnSyncReturns } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../../packages/image/src/index.js';
import {
  buildTestLayers,
  type PushedImage,
  pushTestImage,
  randomName,
  type TestLayer,
} from '../../../packages/image/test/helpers/image.js';
import { type StartedRegistry, startRegistry } from '../../../packages/image/test/helpers/registry.js';

export { type PushedImage, randomName, type StartedRegistry, type TestLayer };

/** A loopback registry holding the multi-layer test image (whiteout, opaque dir, zstd layer, multi-platform index). */
export async function registryWithImage(): Promise<{
  registry: StartedRegistry;
  pushed: PushedImage;
  layers: TestLayer[];
}> {
  const registry = await startRegistry();
  const layers = await buildTestLayers();
  const pushed = await pushTestImage(
    new RegistryClient({ registry: registry.host }),
    randomName('berth/cli'),
    'v1',
    layers,
    { index: true },
  );
  return { registry, pushed, layers };
}

/** Entries of a store subdirectory (blobs/sha256, layers/sha256, images). */
export function storeEntries(store: string, sub: string): string[] {
  const dir = join(store, sub);
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Exactly one line on stderr, prefixed `berth: `, and exit status 1: what a user sees for a bad request. */
export function oneLineError(r: SpawnSyncReturns<string>): string {
  const lines = r.stderr.split('\n').filter(Boolean);
  if (r.status !== 1 || lines.length !== 1 || !lines[0]!.startsWith('berth: ')) {
    throw new Error(`expected one error line and exit 1, got ${r.status}: ${JSON.stringify(r.stderr)}`);
  }
  return lines[0]!;
}

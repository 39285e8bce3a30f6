import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm'],
    target: 'node20',
    dts: true,
    clean: true,
    sourcemap: true,
  },
  {
    // the CNI plugin: containerd and podman run it by its file name
    entry: { 'berth-bridge': 'src/bin/berth-bridge.ts' },
    format: ['esm'],
    target: 'node20',
    outExtension: () => ({ js: '.mjs' }),
    splitting: false,
    banner: { js: '#!/usr/bin/env node' },
    sourcemap: true,
  },
]);

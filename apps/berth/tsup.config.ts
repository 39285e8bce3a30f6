import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/cli.ts'],
  // One CommonJS file with berth's own packages inside: Node's ESM loader
  // resolves and links every module separately, and that showed as ~20 ms of
  // every command's start-up. Commands are still evaluated only when they run.
  format: ['cjs'],
  target: 'node20',
  dts: false,
  clean: true,
  sourcemap: true,
  splitting: false,
  shims: true,
  noExternal: [/^@berth\//],
  // native addon: loaded from node_modules, and only when a command needs it
  external: ['koffi'],
});

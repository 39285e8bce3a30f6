import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

// `berth --version` (src/version.ts): read here, at build time, never written as literals
const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const { OCI_VERSION } = await import('@berth/spec');
let commit = 'unknown';
try {
  commit = execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=12'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
} catch {}

export default defineConfig({
  define: {
    __BERTH_VERSION__: JSON.stringify(version),
    __BERTH_OCI_VERSION__: JSON.stringify(OCI_VERSION),
    __BERTH_COMMIT__: JSON.stringify(commit),
  },
  // dist/cli.cjs: the CLI, one file that runs on its own; dist/berth.cjs (the `berth` bin) runs
  // it compiled with a V8 code cache (src/boot.ts)
  entry: { cli: 'src/cli.ts', berth: 'src/boot.ts' },
  // One CommonJS file with berth's own packages inside: Node's ESM loader
  // resolves and links every module separately, and that showed as ~20 ms of
  // every command's start-up. Commands are still evaluated only when they run.
  format: ['cjs'],
  // import() of koffi and node: builtins as require(): no ESM loader at run time, and the
  // bundle can be compiled as a plain script (with a code cache) by dist/cli.cjs
  esbuildOptions(options) {
    options.supported = { ...options.supported, 'dynamic-import': false };
  },
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

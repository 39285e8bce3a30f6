import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';

// Node builtins that the bundled packages import at their top, given to the bundle through a
// stand-in that loads them at first use (src/lazy/): only the commands that use them pay for them
const LAZY: Record<string, string> = {
  crypto: fileURLToPath(new URL('./src/lazy/crypto.ts', import.meta.url)),
  'fs/promises': fileURLToPath(new URL('./src/lazy/fs-promises.ts', import.meta.url)),
  child_process: fileURLToPath(new URL('./src/lazy/child-process.ts', import.meta.url)),
  net: fileURLToPath(new URL('./src/lazy/net.ts', import.meta.url)),
  dgram: fileURLToPath(new URL('./src/lazy/dgram.ts', import.meta.url)),
};

// The image, network and VM packages go to a second bundle, dist/more.cjs (src/more.ts), loaded
// at first use by src/more-link.ts; in it, @berth/sys and @berth/spec are dist/cli.cjs's own,
// handed over as `__berthCore` (the bundles' function takes it as a sixth argument)
const MORE = new Set(['@berth/image', '@berth/network', '@berth/vm']);
const CORE = new Set(['@berth/sys', '@berth/spec']);
const moreEntry = fileURLToPath(new URL('./src/more.ts', import.meta.url));
const moreLink = fileURLToPath(new URL('./src/more-link.ts', import.meta.url));
const moreDirs = ['image', 'network', 'vm'].map((p) =>
  fileURLToPath(new URL(`../../packages/${p}/`, import.meta.url)),
);

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

// one build's two bundles know each other: dist/more.cjs from another build is an error
const build = randomBytes(8).toString('hex');

export default defineConfig({
  define: {
    __BERTH_BUILD__: JSON.stringify(build),
    __BERTH_VERSION__: JSON.stringify(version),
    __BERTH_OCI_VERSION__: JSON.stringify(OCI_VERSION),
    __BERTH_COMMIT__: JSON.stringify(commit),
  },
  // dist/cli.cjs: the CLI, one file that runs with dist/more.cjs beside it; dist/berth.cjs (the
  // `berth` bin) runs it compiled with a V8 code cache (src/boot.ts, src/code-cache.ts)
  entry: { cli: 'src/cli.ts', berth: 'src/boot.ts', more: 'src/more.ts' },
  // One CommonJS file with berth's own packages inside: Node's ESM loader
  // resolves and links every module separately, and that showed as ~20 ms of
  // every command's start-up. Commands are still evaluated only when they run.
  format: ['cjs'],
  // import() of koffi and node: builtins as require(): no ESM loader at run time, and the
  // bundle can be compiled as a plain script (with a code cache) by dist/cli.cjs
  esbuildOptions(options) {
    options.supported = { ...options.supported, 'dynamic-import': false };
    // Less source to read, copy and pre-parse at every start, and a smaller code cache.
    // Names are kept (no identifier minification): stack traces and --debug output stay
    // readable, and the source map still maps every line. Licence comments of bundled
    // code (smol-toml's BSD notice) are collected at the end of the file.
    options.minifyWhitespace = true;
    options.minifySyntax = true;
    options.legalComments = 'eof';
    // The whole file is one function expression that src/boot.ts compiles as it is (a string
    // Node's module wrapper would have to concatenate is copied once more by V8: 600 KB of
    // fresh memory): run by `node dist/cli.cjs` (`this` is module.exports) it calls itself.
    options.banner = {
      js: `(function(main){return this===globalThis?main:main.call(this,exports,require,module,__filename,__dirname)}).call(this,function(exports,require,module,__filename,__dirname,__berthCore){`,
    };
    options.footer = { js: '});' };
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
  esbuildPlugins: [
    {
      name: 'more-bundle',
      setup(build) {
        build.onResolve({ filter: /^@berth\// }, async (args) => {
          if (args.pluginData === 'more') return undefined;
          // src/more.ts require()s each package, to evaluate it at first use: resolved as the
          // ESM import it is (the packages export only `import`)
          if (args.importer === moreEntry)
            return build.resolve(args.path, {
              kind: 'import-statement',
              resolveDir: args.resolveDir,
              pluginData: 'more',
            });
          const inMore = moreDirs.some((d) => args.importer.startsWith(d));
          if (inMore && MORE.has(args.path)) return undefined;
          if (inMore) {
            if (CORE.has(args.path)) return { path: args.path, namespace: 'berth-core' };
            // a second copy of a package in dist/more.cjs would be a second module state
            return { errors: [{ text: `${args.path}: not given to dist/more.cjs (tsup.config.ts CORE)` }] };
          }
          return MORE.has(args.path) ? { path: args.path, namespace: 'berth-more' } : undefined;
        });
        build.onLoad({ filter: /.*/, namespace: 'berth-more' }, (args) => ({
          contents: `module.exports = require(${JSON.stringify(moreLink)}).loadMore()[${JSON.stringify(args.path.slice('@berth/'.length))}]();`,
          loader: 'js',
          resolveDir: dirname(moreLink),
        }));
        build.onLoad({ filter: /.*/, namespace: 'berth-core' }, (args) => ({
          contents: `if (typeof __berthCore !== 'object') throw new Error('dist/more.cjs is loaded by dist/cli.cjs, not on its own');\nmodule.exports = __berthCore[${JSON.stringify(args.path)}];`,
          loader: 'js',
        }));
      },
    },
    {
      name: 'lazy-builtins',
      setup(build) {
        // What the bundle is made of, the packages' dist/, says `crypto` (tsup drops the node:
        // prefix); tsup resolves this package's own `node:` imports before any plugin (they stay
        // as they are). The stand-ins load the real modules with createRequire.
        build.onResolve({ filter: /^(node:)?(crypto|fs\/promises|child_process|net|dgram)$/ }, (args) => {
          const stand = LAZY[args.path.replace(/^node:/, '')]!;
          return args.importer === stand ? { path: args.path, external: true } : { path: stand };
        });
      },
    },
  ],
});

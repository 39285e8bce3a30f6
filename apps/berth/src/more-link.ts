// dist/cli.cjs's side of dist/more.cjs (src/more.ts): tsup.config.ts makes every
// `import('@berth/image')`, `import('@berth/network')` and `import('@berth/vm')` in the CLI bundle
// a call to loadMore(), which compiles dist/more.cjs once (with its code cache) and hands it this
// bundle's own @berth/sys and @berth/spec.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as spec from '@berth/spec';
import * as sys from '@berth/sys';
import { commandOf, compileCached } from './code-cache.js';

declare const __BERTH_BUILD__: string;

/** What dist/more.cjs exports: its build, and each package, evaluated at the first call. */
export interface More {
  build: string;
  image: () => typeof import('@berth/image');
  network: () => typeof import('@berth/network');
  vm: () => typeof import('@berth/vm');
}

/** The packages dist/more.cjs takes from this bundle (src/more.ts's build resolves them to these). */
export type CoreModules = Record<'@berth/sys' | '@berth/spec', unknown>;

let more: More | undefined;

/** dist/more.cjs, beside this bundle, evaluated at the first call. */
export function loadMore(): More {
  if (more) return more;
  const file = join(__dirname, 'more.cjs');
  let script: ReturnType<typeof compileCached>;
  try {
    script = compileCached(file, commandOf(process.argv.slice(2)));
  } catch (e) {
    throw new sys.BerthError(
      `cannot load ${file} (the CLI's image, network and VM code): ${(e as Error).message}; reinstall @berth/cli`,
      { code: 'EINSTALL', path: file, cause: e },
    );
  }
  const fn = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: { exports: unknown },
    filename: string,
    dirname: string,
    core: CoreModules,
  ) => void;
  const mod = { exports: {} as More };
  const core: CoreModules = { '@berth/sys': sys, '@berth/spec': spec };
  fn.call(mod.exports, mod.exports, createRequire(file), mod, file, dirname(file), core);
  // the two bundles of one install are one build: a copy from another would call into a
  // different @berth/sys and @berth/spec than it was built with
  if (mod.exports.build !== __BERTH_BUILD__)
    throw new sys.BerthError(
      `${file} is from another build of berth than ${join(__dirname, 'cli.cjs')}; reinstall @berth/cli`,
      { code: 'EINSTALL', path: file },
    );
  more = mod.exports;
  return more;
}

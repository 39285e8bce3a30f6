#!/usr/bin/env node
// The `berth` bin's entry (dist/berth.cjs). It runs the CLI bundle, dist/cli.cjs,
// compiled with a V8 code cache kept next to it (src/code-cache.ts): parsing and
// compiling the bundle was the largest share of a command's own start-up (see
// bench/results). Only node: builtins that Node has loaded already at start are used here.
import * as nodeModule from 'node:module';
import { dirname, join } from 'node:path';
import { commandOf, compileCached } from './code-cache.js';

// node:module is `export =` in @types/node: its class, taken from the namespace
const Module = nodeModule.Module;
type Module = InstanceType<typeof Module>;

const main = join(__dirname, 'cli.cjs');
const script = compileCached(main, commandOf(process.argv.slice(2)));
const mod = new Module(main, module);
mod.filename = main;
mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(
  dirname(main),
);
// the bundle's own function (tsup.config.ts: its banner returns it when `this` is the global object)
const wrapper = script.runInThisContext() as (
  exports: unknown,
  require: NodeJS.Require,
  module: Module,
  filename: string,
  dirname: string,
) => void;
wrapper.call(mod.exports, mod.exports, Module.createRequire(main), mod, main, dirname(main));

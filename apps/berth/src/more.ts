// The CLI's second bundle, dist/more.cjs: the image and registry code, the network and the VM
// backend (with smol-toml), which a container lifecycle command from a bundle (what containerd
// runs) never uses. Kept out of dist/cli.cjs, they are ~36% less source for every command to
// read and hold (`run -b`: ~3 ms and ~0.5 MiB). Loaded by src/more-link.ts at the first use;
// its @berth/sys and @berth/spec are the ones in dist/cli.cjs (tsup.config.ts), so there is one
// BerthError class, one lock and one launcher in a process.
// Each package is evaluated at its first use, as it was in one bundle: a `run IMAGE` never
// evaluates the VM code (nor loads node:zlib for it).

declare const __BERTH_BUILD__: string;

/** The build this bundle is from (tsup.config.ts): dist/cli.cjs loads only its own build's. */
export const build: string = __BERTH_BUILD__;

/** @berth/image, evaluated at the first call. */
export const image = (): typeof import('@berth/image') => require('@berth/image');
/** @berth/network, evaluated at the first call. */
export const network = (): typeof import('@berth/network') => require('@berth/network');
/** @berth/vm, evaluated at the first call. */
export const vm = (): typeof import('@berth/vm') => require('@berth/vm');

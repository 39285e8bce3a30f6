// Filled in at build time by tsup.config.ts (`define`): the version from this
// package's package.json, the OCI runtime-spec version from @berth/spec (the
// one `berth spec`, `state` and `features` write), and the git commit the
// bundle was built from. Never literals: `berth --version` agrees with the
// package that was installed.
declare const __BERTH_VERSION__: string;
declare const __BERTH_OCI_VERSION__: string;
declare const __BERTH_COMMIT__: string;

/** This CLI's version (apps/berth/package.json). */
export const VERSION: string = __BERTH_VERSION__;
/** The OCI runtime-spec version berth implements. */
export const OCI_SPEC_VERSION: string = __BERTH_OCI_VERSION__;
/** `git describe` of the tree the bundle was built from, or "unknown". */
export const COMMIT: string = __BERTH_COMMIT__;

/** `berth --version`, in runc's format (`runc version X`, `commit:`, `spec:`, then the toolchain). */
export function versionText(): string {
  return `berth version ${VERSION}\ncommit: ${COMMIT}\nspec: ${OCI_SPEC_VERSION}\nnode: ${process.version}\n`;
}

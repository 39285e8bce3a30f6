/**
 * An override from the environment, for a user who is not root: root never
 * runs a binary (or builds into a directory) that an environment variable
 * names, since whoever set it could have written what it names.
 */
export function envOverride(name: string): string | undefined {
  return process.geteuid?.() === 0 ? undefined : process.env[name];
}

import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { str } from './common.js';
import { registryKey } from './registry-options.js';

export const command: Command = {
  name: 'logout',
  summary: 'remove the saved credentials of a registry',
  usage: '[options] REGISTRY\n       berth logout --all',
  description: `
Removes what berth login saved for REGISTRY from auth.json (--authfile, else
$REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
/run/containers/UID/auth.json), or erases it from the credential helper that
file names for the registry. Credentials in Docker's config.json are left
alone (berth says so): remove them with docker logout.`,
  options: [
    { name: 'authfile', value: 'FILE', help: 'the auth.json to remove them from' },
    { name: 'all', short: 'a', help: 'remove the credentials of every registry from the file' },
  ],
  async run({ options: o, positionals: p }) {
    const all = o['all'] === true;
    if (all ? p.length !== 0 : p.length !== 1) {
      throw new UsageError('berth logout needs exactly one REGISTRY, or --all (see berth logout --help)');
    }
    const authfile = str(o['authfile']);
    const { removeCredentials } = await import('@berth/image');
    const key = all ? undefined : registryKey(p[0]!);
    await removeCredentials(key, { ...(authfile !== undefined ? { authFile: authfile } : {}), all });
    process.stdout.write(
      all ? 'Removed login credentials for all registries\n' : `Removed login credentials for ${key}\n`,
    );
    return 0;
  },
};

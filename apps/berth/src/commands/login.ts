import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { str } from './common.js';
import { registryFlags, registryKey, tlsOptions } from './registry-options.js';

/** Reads a line from the terminal; `hidden` echoes nothing (for passwords). */
async function prompt(question: string, hidden: boolean): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  if (!hidden) {
    const { createInterface } = await import('node:readline');
    const rl = createInterface({ input: stdin, output: process.stderr, terminal: false });
    const line = await new Promise<string>((resolve) =>
      rl.once('line', resolve).once('close', () => resolve('')),
    );
    rl.close();
    return line;
  }
  stdin.setRawMode(true);
  stdin.resume();
  try {
    let value = '';
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return value;
        if (ch === '\u0003') throw new UsageError('login cancelled');
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    }
    return value;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export const command: Command = {
  name: 'login',
  summary: 'log in to a registry (checks the credentials, then saves them)',
  usage: '[options] REGISTRY',
  description: `
Checks USER and PASSWORD against REGISTRY (host[:port], or host/namespace for
credentials that apply to one namespace) and saves them, as podman does, in
auth.json: --authfile, else $REGISTRY_AUTH_FILE, else
$XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json.
When that file names a credential helper for the registry (credHelpers,
credsStore), the helper stores them instead. Nothing is saved when the
registry rejects them. Without -u/-p on a terminal, berth asks.`,
  options: [
    { name: 'username', short: 'u', value: 'USER', help: 'the user name' },
    {
      name: 'password',
      short: 'p',
      value: 'PASSWORD',
      help: 'the password (visible to other users: prefer --password-stdin)',
    },
    { name: 'password-stdin', help: 'read the password from standard input' },
    { name: 'authfile', value: 'FILE', help: 'save to this auth.json' },
    { name: 'get-login', help: 'print the user logged in to REGISTRY and save nothing' },
    ...tlsOptions,
  ],
  async run({ options: o, positionals: p }) {
    if (p.length !== 1)
      throw new UsageError('berth login needs exactly one REGISTRY (see berth login --help)');
    const key = registryKey(p[0]!);
    const host = key.split('/')[0]!;
    const authfile = str(o['authfile']);
    const flags = registryFlags(o);
    const image = await import('@berth/image');
    if (o['get-login'] === true) {
      const config = await image.loadRegistriesConfig();
      const found = await image.findCredentials(
        host,
        key.includes('/') ? key.slice(host.length + 1) : undefined,
        {
          ...(authfile !== undefined ? { authFile: authfile } : {}),
          credentialHelpers: config.credentialHelpers,
        },
      );
      if (found === undefined) throw new UsageError(`not logged into ${key}`);
      process.stdout.write(`${found.username}\n`);
      return 0;
    }
    let username = str(o['username']);
    let password = str(o['password']);
    if (o['password-stdin'] === true) {
      if (password !== undefined) throw new UsageError('--password and --password-stdin exclude each other');
      if (username === undefined) throw new UsageError('--password-stdin needs --username');
      password = await readStdin();
    }
    const tty = process.stdin.isTTY === true;
    if (username === undefined) {
      if (!tty) throw new UsageError('berth login needs --username (no terminal to ask on)');
      username = (await prompt('Username: ', false)).trim();
    }
    if (password === undefined) {
      if (!tty)
        throw new UsageError('berth login needs --password-stdin or --password (no terminal to ask on)');
      password = await prompt('Password: ', true);
    }
    if (username === '' || username.includes(':'))
      throw new UsageError('the user name must be non-empty and have no ":"');
    if (password === '') throw new UsageError('the password is empty');
    const config = await image.loadRegistriesConfig();
    const insecure = flags.tlsVerify === false || image.registryInsecure(config, host);
    const tls = await image.loadTlsSettings(host, flags, insecure);
    const client = new image.RegistryClient({
      registry: host,
      insecure,
      tls,
      credentials: { username, password },
    });
    await client.checkLogin();
    await image.saveCredentials(
      key,
      { username, password },
      authfile !== undefined ? { authFile: authfile } : {},
    );
    process.stdout.write('Login Succeeded!\n');
    return 0;
  },
};

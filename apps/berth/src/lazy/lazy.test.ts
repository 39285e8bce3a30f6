// The stand-ins for node:crypto, node:fs/promises, node:child_process and node:net that the CLI
// bundle gets (tsup.config.ts): the same results as the real modules, which are loaded only at
// the first call.
import * as realChild from 'node:child_process';
import * as realCrypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as realFsp from 'node:fs/promises';
import * as realNet from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as child from './child-process.js';
import * as crypto from './crypto.js';
import * as fsp from './fs-promises.js';
import * as net from './net.js';

describe('lazy builtins', () => {
  it('node:crypto: the same hashes, random bytes of the asked length', () => {
    expect(crypto.createHash('sha256').update('abc').digest('hex')).toBe(
      realCrypto.createHash('sha256').update('abc').digest('hex'),
    );
    const r = crypto.randomBytes(7);
    expect(Buffer.isBuffer(r) && r.length).toBe(7);
  });

  it('node:fs/promises: every function of it, each calling the real one', async () => {
    const missing = Object.keys(realFsp).filter(
      (k) => typeof (realFsp as Record<string, unknown>)[k] === 'function' && !(k in fsp),
    );
    expect(missing).toEqual([]);
    expect(fsp.constants).toBe(realFsp.constants);
    const dir = mkdtempSync(join(tmpdir(), 'berth-lazy-'));
    try {
      await fsp.writeFile(join(dir, 'f'), 'data');
      expect(await fsp.readFile(join(dir, 'f'), 'utf8')).toBe('data');
      await expect(fsp.stat(join(dir, 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('node:child_process: runs programs, synchronously and not', async () => {
    const r = child.spawnSync('/bin/sh', ['-c', 'echo out; exit 3'], { encoding: 'utf8' });
    expect([r.status, r.stdout]).toEqual([3, 'out\n']);
    expect(child.execFileSync('/bin/echo', ['hi'], { encoding: 'utf8' })).toBe('hi\n');
    const out = await new Promise<string>((resolve, reject) =>
      child.execFile('/bin/echo', ['async'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    expect(out).toBe('async\n');
    const c = child.spawn('/bin/true');
    expect(c).toBeInstanceOf(realChild.ChildProcess);
    expect(await new Promise((r) => c.on('exit', r))).toBe(0);
  });

  it('node:net: a server, a client and a new Socket are those of node:net', async () => {
    const name = `\0berth-lazy-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const server = net.createServer((s) => s.end('hello'));
    expect(server).toBeInstanceOf(realNet.Server);
    await new Promise<void>((r) => server.listen(name, r));
    try {
      const got = await new Promise<string>((resolve, reject) => {
        let data = '';
        const c = net.connect(name);
        c.on('data', (d) => (data += d));
        c.on('end', () => resolve(data));
        c.on('error', reject);
      });
      expect(got).toBe('hello');
    } finally {
      server.close();
    }
    const s = new net.Socket();
    expect(s).toBeInstanceOf(realNet.Socket);
    s.destroy();
  });
});

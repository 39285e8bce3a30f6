import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { passwdName } from './runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-passwd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('passwdName (the owner a container record names)', () => {
  it('finds the uid in a passwd file, and nothing for a uid that is not there', () => {
    const file = join(dir, 'passwd');
    writeFileSync(
      file,
      [
        '+nisuser:x:1500:1500::/home/nis:/bin/sh', // NIS compat: NSS's to resolve
        'broken line',
        'root:x:0:0:root:/root:/bin/bash',
        'alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash',
        ':x:2000:2000::/:/bin/sh', // no name
        '',
      ].join('\n'),
    );
    expect(passwdName(0, file)).toBe('root');
    expect(passwdName(1000, file)).toBe('alice');
    expect(passwdName(100, file)).toBeUndefined();
    expect(passwdName(1500, file)).toBeUndefined();
    expect(passwdName(2000, file)).toBeUndefined();
    expect(passwdName(0, join(dir, 'missing'))).toBeUndefined();
  });

  it("names this process's user as the system does", () => {
    expect(passwdName(process.getuid?.() ?? 0)).toBe(userInfo().username);
  });
});

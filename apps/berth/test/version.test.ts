// `berth --version`: runc's format, with the version of the package that was
// built (apps/berth/package.json) and the runtime-spec version berth writes.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { OCI_VERSION } from '@berth/spec';
import { describe, expect, it } from 'vitest';
import { CLI } from './helpers.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const berth = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('berth --version', () => {
  it("prints its package's version and the spec version, in runc's format", () => {
    const r = berth('--version');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(pkg.version).not.toBe('0.0.0');
    expect(lines[0]).toBe(`berth version ${pkg.version}`);
    expect(lines[1]).toMatch(/^commit: \S+$/);
    expect(lines[2]).toBe(`spec: ${OCI_VERSION}`);
    expect(lines[3]).toBe(`node: ${process.version}`);
    expect(berth('-v').stdout).toBe(r.stdout);
    // the help's first line names the same version
    expect(berth('--help').stdout.split('\n')[0]).toContain(`berth ${pkg.version}:`);
  });

  it('names the spec version that features, spec and state use', () => {
    const spec = berth('--version').stdout.match(/^spec: (.+)$/m)?.[1];
    const features = berth('features');
    expect(features.status).toBe(0);
    expect(JSON.parse(features.stdout).ociVersionMax).toBe(spec);
  });
});

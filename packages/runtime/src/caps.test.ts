import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { ownCapabilitySet } from './caps.js';

describe('ownCapabilitySet', () => {
  it('reads this process’s sets as /proc/self/status shows them', async () => {
    const { readFileSync } = await import('node:fs');
    const status = readFileSync('/proc/self/status', 'utf8');
    for (const f of ['CapBnd', 'CapEff', 'CapPrm'] as const) {
      const hex = new RegExp(`^${f}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1];
      expect(ownCapabilitySet(f)).toBe(BigInt(`0x${hex}`));
    }
  });

  it('reads them again after a change of user: seteuid clears the effective set, and back', () => {
    // a process of its own, which may change its user: caps.ts bundled as it is
    const { outputFiles } = buildSync({
      entryPoints: [fileURLToPath(new URL('./caps.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      write: false,
    });
    const script = `${outputFiles[0]?.text}
      const own = module.exports.ownCapabilitySet;
      const before = own('CapEff');
      process.seteuid(65534);
      const after = own('CapEff');
      process.seteuid(0);
      const again = own('CapEff');
      console.log(JSON.stringify([before, after, again].map(String)));`;
    const [before, after, again] = JSON.parse(
      execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }),
    );
    expect(BigInt(before)).not.toBe(0n);
    expect(after).toBe('0');
    expect(again).toBe(before);
  });
});

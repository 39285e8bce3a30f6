// `nft` runs the nftables command (through @berth/sys captureOutput): its JSON, and its failures.
import { describe, expect, it } from 'vitest';
import { nft } from '../src/nat.js';

describe('nft', () => {
  it("returns nft's JSON", async () => {
    const out = await nft(['list', 'tables']);
    expect(Array.isArray(out['nftables'])).toBe(true);
  });

  it("names the command and nft's own message when nft fails", async () => {
    const table = `berth-no-such-table-${process.pid}`;
    const err = await nft(['list', 'table', 'ip', table]).catch((e) => e);
    expect(err).toMatchObject({ code: 'ENAT', op: 'nft' });
    expect(err.message).toContain(`nft list table ip ${table}: `);
    expect(err.message).toMatch(/No such file or directory|does not exist/);
  });

  it('says what to install when there is no nft on PATH', async () => {
    const path = process.env['PATH'];
    process.env['PATH'] = '/nonexistent';
    try {
      await expect(nft(['list', 'tables'])).rejects.toMatchObject({
        code: 'ENAT',
        message: 'the nft command is missing: install nftables (apt-get install nftables)',
      });
    } finally {
      process.env['PATH'] = path;
    }
  });
});

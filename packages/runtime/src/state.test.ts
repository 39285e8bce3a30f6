import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ContainerRecord, StateStore } from './state.js';

const root = mkdtempSync(join(tmpdir(), 'berth-state-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('container state', () => {
  it('reads only a record this user wrote: one another user could have written (a --root others may write) is refused', () => {
    const store = new StateStore(root);
    store.claim('mine');
    store.write({ ociVersion: '1.2.0', id: 'mine', status: 'created' } as ContainerRecord);
    expect(store.read('mine').id).toBe('mine');
    // a record planted by someone else: its hooks and directories must never be acted on
    store.claim('forged');
    const file = join(root, 'forged', 'state.json');
    writeFileSync(file, JSON.stringify({ ociVersion: '1.2.0', id: 'forged', status: 'stopped' }));
    const me = process.geteuid?.() ?? 0;
    chownSync(file, me + 4242, me + 4242);
    expect(() => store.read('forged')).toThrow(/refusing the state of container forged: .* belongs to uid/);
    // nor one others may write
    chownSync(file, me, me);
    chmodSync(file, 0o666);
    expect(() => store.read('forged')).toThrow(/not to this user \(uid \d+\) alone/);
    chmodSync(file, 0o600);
    expect(store.read('forged').id).toBe('forged');
  });
});

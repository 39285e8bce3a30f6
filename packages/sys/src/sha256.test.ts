import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from './sha256.js';

const ref = (d: string | Uint8Array) => createHash('sha256').update(d).digest('hex');

describe('sha256Hex', () => {
  it('gives the FIPS 180-2 test vectors', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('agrees with node:crypto at every length around the block and padding edges', () => {
    for (let n = 0; n <= 300; n++) {
      const data = randomBytes(n);
      expect(sha256Hex(data), `length ${n}`).toBe(ref(data));
    }
    const big = randomBytes(100_003);
    expect(sha256Hex(big)).toBe(ref(big));
  });

  it('hashes a string as UTF-8', () => {
    for (const s of ['/run/berth', 'é→🙂', `/tmp/${'x'.repeat(200)}`]) expect(sha256Hex(s)).toBe(ref(s));
  });
});

import { describe, expect, it } from 'vitest';
import { isoTime } from './time.js';

describe('isoTime', () => {
  it('is toISOString, for now and for every kind of day from year 0 to 9999', () => {
    const now = Date.now();
    expect(isoTime(now)).toBe(new Date(now).toISOString());
    const fixed = [
      0,
      -1,
      86_399_999,
      Date.UTC(2000, 1, 29, 23, 59, 59, 999), // a leap day of a year divisible by 400
      Date.UTC(2100, 2, 1), // after the February of a year divisible by 100, not 400
      Date.UTC(1900, 1, 28, 12),
      Date.UTC(2026, 11, 31, 23, 59, 59, 999),
      Date.UTC(1900, 0, 1),
      -62_167_219_200_000, // 0000-01-01T00:00:00.000Z
      253_402_300_799_999, // 9999-12-31T23:59:59.999Z
    ];
    for (const t of fixed) expect(isoTime(t)).toBe(new Date(t).toISOString());
    // a pseudo-random sweep (deterministic: a linear congruential sequence)
    let x = 12345;
    for (let i = 0; i < 20_000; i++) {
      x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
      const t = -62_167_219_200_000 + (x / 2 ** 31) * (253_402_300_799_999 + 62_167_219_200_000);
      const ms = Math.floor(t);
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('leaves years outside 0000-9999 to toISOString', () => {
    for (const t of [-62_167_219_200_001, 253_402_300_800_000, 8.64e15])
      expect(isoTime(t)).toBe(new Date(t).toISOString());
  });
});

import { describe, expect, it } from 'vitest';
import {
  blkioWeightToIoWeight,
  cpuMaxValue,
  cpuSharesToWeight,
  cpuSharesToWeightLinear,
  memorySwapToV2,
} from './convert.js';

describe('v1 -> v2 conversions (runc/crun numbers)', () => {
  it('maps cpu.shares to cpu.weight with the log-space quadratic', () => {
    expect(cpuSharesToWeight(0)).toBe(0);
    expect(cpuSharesToWeight(2)).toBe(1);
    expect(cpuSharesToWeight(1024)).toBe(100);
    expect(cpuSharesToWeight(262144)).toBe(10000);
    expect(cpuSharesToWeight(512)).toBe(cpuSharesToWeight(512));
    expect(cpuSharesToWeight(512)).toBeLessThan(100);
    expect(cpuSharesToWeight(2048)).toBeGreaterThan(100);
  });

  it('keeps the pre-1.3 linear formula available', () => {
    expect(cpuSharesToWeightLinear(1024)).toBe(39);
    expect(cpuSharesToWeightLinear(2)).toBe(1);
    expect(cpuSharesToWeightLinear(262144)).toBe(10000);
  });

  it('maps blkio weight to io.weight', () => {
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
  });

  it('turns memory+swap into swap alone', () => {
    expect(memorySwapToV2(200, 100)).toBe(100);
    expect(memorySwapToV2(undefined, -1)).toBe(-1);
    expect(memorySwapToV2(-1, 100)).toBe(-1);
    expect(memorySwapToV2(0, 100)).toBe(0);
    expect(memorySwapToV2(50, 100)).toMatch(/must be >= memory.limit/);
    expect(memorySwapToV2(50, undefined)).toMatch(/without a memory limit/);
  });

  it('builds cpu.max like runc', () => {
    expect(cpuMaxValue(20000, 100000)).toBe('20000 100000');
    expect(cpuMaxValue(-1, 100000)).toBe('max 100000');
    expect(cpuMaxValue(50000, undefined)).toBe('50000');
    expect(cpuMaxValue(undefined, undefined)).toBeUndefined();
  });
});

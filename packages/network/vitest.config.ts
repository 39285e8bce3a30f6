import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // the interfaces are the package: their expectTypeOf checks must fail the run, not only tsc
    typecheck: { enabled: true, include: ['src/**/*.test.ts'], tsconfig: './tsconfig.json' },
  },
});

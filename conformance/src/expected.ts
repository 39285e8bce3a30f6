/**
 * Requirements a runtime is known to fail today, by runtime name (the first
 * word of `RUNTIME --version`), with the reason. Tests listed here run as
 * expected failures (vitest's test.fails): they still run, the suite stays
 * green, and the day one starts passing the suite turns red so the entry is
 * removed. Never add an id without the exact failure; README.md lists them too.
 */
export const EXPECTED_FAILURES: Record<string, Record<string, string>> = {
  // berth passes every requirement (2026-12-02: C-CAPS-UNKNOWN now warns, H-POSTSTART-FAIL is an error)
  berth: {},
};

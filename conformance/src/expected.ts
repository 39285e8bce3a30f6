/**
 * Requirements a runtime is known to fail today, by runtime name (the first
 * word of `RUNTIME --version`), with the reason. Tests listed here run as
 * expected failures (vitest's test.fails): they still run, the suite stays
 * green, and the day one starts passing the suite turns red so the entry is
 * removed. Never add an id without the exact failure; README.md lists them too.
 */
export const EXPECTED_FAILURES: Record<string, Record<string, string>> = {
  berth: {
    'C-CAPS-UNKNOWN':
      'create refuses it: `process.capabilities.bounding[3]: "CAP_CONFORMANCE_NO_SUCH" is not a known capability` (berth makes unknown security fields errors; the spec asks for a warning)',
    'H-POSTSTART-FAIL': 'start exits 0 when a poststart hook exits 1',
  },
};

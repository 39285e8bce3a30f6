#!/usr/bin/env node
// The installed command. It exists before the build does, so npm can link it
// at install time; the CLI itself is the bundle in dist/ (cli.cjs), which
// dist/berth.cjs runs compiled with a V8 code cache.
require('../dist/berth.cjs');

#!/usr/bin/env node
// The installed command. It exists before the build does, so npm can link it
// at install time; the CLI itself is the bundle in dist/.
require('../dist/cli.cjs');

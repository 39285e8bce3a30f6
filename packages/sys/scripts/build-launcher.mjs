// Compiles the native launcher into dist/ (run by `npm run build` after tsup).
import { compileLauncher } from '../dist/index.js';

const out = new URL('../dist/berth-launcher', import.meta.url).pathname;
compileLauncher(out);
console.log(`built ${out}`);

// CNI runtimes find a plugin by its file name in CNI_PATH: dist/cni/berth-bridge
// is that file (executable, no extension), next to the module it runs.
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist/cni', { recursive: true });
copyFileSync('dist/berth-bridge.mjs', 'dist/cni/berth-bridge');
chmodSync('dist/cni/berth-bridge', 0o755);
chmodSync('dist/berth-bridge.mjs', 0o755);

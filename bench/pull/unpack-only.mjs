import { ImageStore } from '@berth/image';
import { unpackLayer } from '@berth/rootfs';
const [ref, storeDir, rootfs] = process.argv.slice(2);
const store = await ImageStore.open(storeDir);
const image = await store.require(ref);
for (const layer of image.layers) await unpackLayer(store.blobPath(layer.digest), rootfs, { whiteouts: 'apply', diffId: layer.diffId });

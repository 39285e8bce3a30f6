// Pull + unpack with berth's libraries, to the same end state as skopeo copy + umoci unpack: verified blobs
// in a store and one flattened root filesystem. DiffIDs are checked once, while unpacking, as umoci does.
// usage: node berth-pull.mjs REF STORE_DIR ROOTFS_DIR
import { ImageStore } from '@berth/image';
import { unpackLayer } from '@berth/rootfs';

const [ref, storeDir, rootfs] = process.argv.slice(2);
const store = await ImageStore.open(storeDir);
const image = await store.pull(ref, { verifyDiffIds: false });
for (const layer of image.layers) {
  await unpackLayer(store.blobPath(layer.digest), rootfs, { whiteouts: 'apply', diffId: layer.diffId });
}

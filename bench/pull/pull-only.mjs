import { ImageStore } from '@berth/image';
const [ref, storeDir] = process.argv.slice(2);
const store = await ImageStore.open(storeDir);
await store.pull(ref);

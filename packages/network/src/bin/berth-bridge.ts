// The berth-bridge CNI plugin (CNI spec 1.0): CNI_COMMAND and friends in the
// environment, the network configuration on stdin, the result on stdout.
import { berthBridgeMain } from '../cni.js';

process.exitCode = await berthBridgeMain();

// Peer discovery with standard DNS-SD over Multicast DNS (RFC 6762/6763), interoperable with
// avahi-daemon and Bonjour. See README.md in this folder for the records, timings and bounds.
export { SERVICE_TYPE, PROTOCOL_VERSION } from './names.js';
export type { PeerTxt } from './txt.js';
export { peerTxtProblem } from './txt.js';
export { type DiscoveredPeer, CACHE_LIMITS, sameIdentityConflict } from './cache.js';
export { DEFAULT_TTL_SECONDS } from './core.js';
export { Discovery, type DiscoveryOptions, type DiscoveryEvents, type DiscoveryStats } from './discovery.js';

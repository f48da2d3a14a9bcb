/**
 * The real servers of the remote-image suites (nginx, s3rver, a fault-injecting proxy), shared
 * with bench/remote.ts: see bench/remote-servers.ts.
 */
export { freePort, selfSignedCert, startNginx, startS3, startFaultProxy } from '../bench/remote-servers.js';
export type { AccessEntry, Nginx, S3Server, Fault, FaultProxy } from '../bench/remote-servers.js';

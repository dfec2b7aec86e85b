/**
 * The handshake proofs: HMAC-SHA256 under the cluster secret, mutual and bound to fresh nonces.
 *
 * 1. server -> client  `challenge {protocolVersion, nonce: Ns}`            (Ns: 32 fresh bytes)
 * 2. client -> server  `hello {protocolVersion, clusterId, nodeId: C, peerId: S, nonce: Nc,
 *                             proof: HMAC(secret, "client" | Ns | Nc | clusterId | C | S)}`
 * 3. server -> client  `welcome {nodeId: S, proof: HMAC(secret, "server" | Nc | Ns | clusterId | S | C)}`
 *
 * A client process (not a member) sends `role: 'client'` in its hello, with C its client id and S
 * the id the challenge named. Both proofs then end with one more field, "client", so a hello
 * cannot change role in transit: a member's proof does not verify as a client's, nor the other
 * way round, and the client's welcome proves the member accepted it in that role.
 *
 * A captured proof is useless later: the next connection gets a fresh Ns (client side) or Nc
 * (server side). The role label keeps a server proof from being reflected as a client proof, and
 * naming both ends keeps a proof for one link from being used on another. Every field is length
 * prefixed inside the MAC so that no two different field lists hash the same input.
 *
 * This authenticates the two ends of the connection at handshake time; it does not protect the
 * later frames against an active man in the middle on plain TCP (they carry no MAC). Use the
 * `tls` option on untrusted networks: TLS then protects the stream and the handshake still
 * checks cluster membership and node ids inside it.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CLIENT_ROLE, NONCE_BYTES, PROOF_BYTES, PROTOCOL_VERSION } from '../codec/protocol.js';

/** Which end a proof speaks for. */
export type ProofRole = 'client' | 'server';

/** What the dialing end is: a member (a peer link) or a client process. */
export type LinkRole = 'member' | typeof CLIENT_ROLE;

/** The proof fields both ends agree on. `role` defaults to 'member' (the proof of old). */
export interface ProofParams {
  serverNonce: Uint8Array;
  clientNonce: Uint8Array;
  clusterId: string;
  clientId: string;
  serverId: string;
  role?: LinkRole;
}

/** A member's proof fields as they always were; a client's with the role appended. */
function withRole(fields: (string | Uint8Array)[], role: LinkRole | undefined): (string | Uint8Array)[] {
  if (role === CLIENT_ROLE) fields.push(CLIENT_ROLE);
  return fields;
}

/** Fresh random bytes for a nonce. */
export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** Computes a proof. Fields are the nonces and ids in the order given above for `role`. */
export function computeProof(secret: Uint8Array, role: ProofRole, fields: readonly (string | Uint8Array)[]): Buffer {
  const mac = createHmac('sha256', secret);
  const label = Buffer.from(`raftqueue/${PROTOCOL_VERSION}/${role}`, 'utf8');
  const length = Buffer.allocUnsafe(4);
  for (const field of [label, ...fields]) {
    const bytes = typeof field === 'string' ? Buffer.from(field, 'utf8') : field;
    length.writeUInt32BE(bytes.byteLength, 0);
    mac.update(length);
    mac.update(bytes);
  }
  return mac.digest();
}

/** Constant-time check of a received proof against the expected one. */
export function proofMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return received.byteLength === PROOF_BYTES && expected.byteLength === PROOF_BYTES && timingSafeEqual(expected, received);
}

/** The client's proof over the server's challenge. */
export function clientProof(secret: Uint8Array, p: ProofParams): Buffer {
  return computeProof(secret, 'client', withRole([p.serverNonce, p.clientNonce, p.clusterId, p.clientId, p.serverId], p.role));
}

/** The server's proof over the client's nonce. */
export function serverProof(secret: Uint8Array, p: ProofParams): Buffer {
  return computeProof(secret, 'server', withRole([p.clientNonce, p.serverNonce, p.clusterId, p.serverId, p.clientId], p.role));
}

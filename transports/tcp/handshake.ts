/**
 * The handshake proofs: HMAC-SHA256 under the cluster secret, mutual and bound to fresh nonces.
 *
 * 1. server -> client  `challenge {protocolVersion, nonce: Ns}`            (Ns: 32 fresh bytes)
 * 2. client -> server  `hello {protocolVersion, clusterId, nodeId: C, peerId: S, nonce: Nc,
 *                             proof: HMAC(secret, "client" | Ns | Nc | clusterId | C | S)}`
 * 3. server -> client  `welcome {nodeId: S, proof: HMAC(secret, "server" | Nc | Ns | clusterId | S | C)}`
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
import { NONCE_BYTES, PROOF_BYTES, PROTOCOL_VERSION } from '../codec/protocol.js';

/** Which end a proof speaks for. */
export type ProofRole = 'client' | 'server';

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
export function clientProof(
  secret: Uint8Array,
  p: { serverNonce: Uint8Array; clientNonce: Uint8Array; clusterId: string; clientId: string; serverId: string },
): Buffer {
  return computeProof(secret, 'client', [p.serverNonce, p.clientNonce, p.clusterId, p.clientId, p.serverId]);
}

/** The server's proof over the client's nonce. */
export function serverProof(
  secret: Uint8Array,
  p: { serverNonce: Uint8Array; clientNonce: Uint8Array; clusterId: string; clientId: string; serverId: string },
): Buffer {
  return computeProof(secret, 'server', [p.clientNonce, p.serverNonce, p.clusterId, p.serverId, p.clientId]);
}

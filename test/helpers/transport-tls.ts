/**
 * Throwaway certificates for TLS tests, made with the openssl CLI in a temp directory: a cluster
 * CA with a node certificate (SAN 127.0.0.1, client and server use), and a rogue CA with a
 * certificate that looks the same but is signed by the wrong authority.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM material for one identity. */
export interface TlsIdentity {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

/** The certificates of a TLS test, plus cleanup. */
export interface TestCertificates {
  /** Signed by the cluster CA. */
  readonly node: TlsIdentity;
  /** Signed by a rogue CA (its `ca` is the rogue CA). */
  readonly rogue: TlsIdentity;
  readonly dir: string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: 20_000 });
}

function authority(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '2', '-subj', `/CN=${name}-ca`], dir);
}

function leaf(dir: string, name: string, caName: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}-ca.crt`, '-CAkey', `${caName}-ca.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', 'ext.cnf'], dir);
}

/** Generates the certificates (a few hundred ms). Call `remove()` in teardown. */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'raftqueue-tls-'));
  try {
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
    authority(dir, 'cluster');
    authority(dir, 'rogue');
    leaf(dir, 'node', 'cluster');
    leaf(dir, 'impostor', 'rogue');
    const read = (file: string) => readFileSync(join(dir, file), 'utf8');
    return {
      node: { key: read('node.key'), cert: read('node.crt'), ca: read('cluster-ca.crt') },
      rogue: { key: read('impostor.key'), cert: read('impostor.crt'), ca: read('rogue-ca.crt') },
      dir,
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

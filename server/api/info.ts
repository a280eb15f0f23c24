/**
 * GET /api/v2/info: how other devices reach this relay. The app puts `publicUrl` in share and pairing links and
 * their QR codes, and warns when the relay listens on this machine only.
 */
import type { FastifyInstance } from 'fastify';
import { infoPath, type RelayInfo } from '../../src/core/protocol/index.ts';
import type { RelayConfig } from '../config.ts';
import { CA_PATH } from '../tls/ca-path.ts';
import { isLoopbackHost, isWildcardHost, lanAddress } from '../tls/machine-names.ts';

/**
 * The operator's --public-url; else, listening on every interface, this machine's LAN address
 * (looked up on each call: a laptop changes networks); else the address it listens on, unless that is loopback.
 */
export function relayInfo(config: Pick<RelayConfig, 'host' | 'publicUrl' | 'tls'>, port: number, opts: { caName?: string | undefined; lan?: () => string | undefined } = {}): RelayInfo {
  const lan = opts.lan ?? lanAddress;
  const scheme = config.tls.mode === 'off' ? 'http' : 'https';
  const localOnly = isLoopbackHost(config.host);
  const at = (host: string): string => `${scheme}://${host.includes(':') ? `[${host}]` : host}${port === (scheme === 'https' ? 443 : 80) ? '' : `:${port}`}`;
  let publicUrl: string | null = null;
  if (config.publicUrl) publicUrl = config.publicUrl;
  else if (isWildcardHost(config.host)) {
    const address = lan();
    publicUrl = address ? at(address) : null;
  } else if (!localOnly) publicUrl = at(config.host.replace(/^\[|\]$/g, ''));
  return {
    publicUrl,
    tls: config.tls.mode,
    caPath: config.tls.mode === 'local' ? CA_PATH : null,
    caName: config.tls.mode === 'local' ? (opts.caName ?? null) : null,
    listensOn: { host: config.host, port, localOnly },
  };
}

export async function infoRoutes(app: FastifyInstance, opts: { info: () => RelayInfo }): Promise<void> {
  app.get(infoPath, async (_request, reply) => {
    void reply.header('cache-control', 'no-store');
    return opts.info();
  });
}

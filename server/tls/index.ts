/**
 * The relay's HTTPS: which certificate it serves (files the operator gave, or a local CA of its own), how that
 * certificate is kept fresh, and the routes that go with it (the CA download, the redirect of plain HTTP from
 * other machines). Plain HTTP keeps working on the same port for this machine itself (see one-port.ts).
 */
import http from 'node:http';
import https from 'node:https';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RelayConfig, TlsSettings } from '../config.ts';
import { certificateDer, certificateFacts, type Pem } from './certificates.ts';
import { readCertificateFiles } from './pem-files.ts';
import { ensureLocalTls, localTlsDir } from './local-ca.ts';
import { isLoopbackHost, machineNames } from './machine-names.ts';
import { shareOnePort } from './one-port.ts';
import { CA_PATH } from './ca-path.ts';

/** How often the machine's addresses (local CA) or the operator's certificate files are looked at again. */
const LOCAL_CHECK_MS = 10 * 60_000;
const FILES_CHECK_MS = 60 * 60_000;

export interface RelayTls {
  mode: TlsSettings['mode'];
  /** For Fastify's serverFactory: the HTTPS server, with plain HTTP on the same port. */
  serverFactory(handler: http.RequestListener): https.Server;
  /** The name of the CA phones install, as they list it (local CA only). */
  caName(): string | undefined;
  /** Routes and hooks: the CA download, the redirect of plain HTTP from other machines. */
  register(app: FastifyInstance): void;
  /** Keeps the certificate fresh once the relay listens; stopped by the app's close. */
  start(app: FastifyInstance): void;
}

/** Reads or makes the first certificate (before the relay listens: a bad file stops it with the fix). */
export async function prepareTls(config: RelayConfig): Promise<RelayTls | undefined> {
  const settings = config.tls;
  if (settings.mode === 'off') return undefined;
  const publicHost = config.publicUrl ? [new URL(config.publicUrl).hostname] : [];
  const localNames = (): ReturnType<typeof machineNames> => machineNames(publicHost);
  let pem: Pem;
  let caCert: string | undefined;
  if (settings.mode === 'files') {
    pem = await readCertificateFiles(settings.certFile, settings.keyFile);
  } else {
    ({ server: pem, caCert } = await ensureLocalTls(localTlsDir(config.dataDir), localNames()));
  }
  let secure: https.Server | undefined;
  const use = (next: Pem): void => secure?.setSecureContext({ cert: next.cert, key: next.key });
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, fn: () => Promise<void>): void => void timers.push(setInterval(() => void fn(), ms).unref());

  return {
    mode: settings.mode,
    serverFactory(handler) {
      secure = https.createServer({ cert: pem.cert, key: pem.key }, handler);
      shareOnePort(secure, http.createServer(handler));
      return secure;
    },
    caName: () => (caCert ? certificateFacts(caCert).commonName : undefined),
    register(app) {
      if (settings.mode === 'local') {
        app.get(CA_PATH, (_request, reply) =>
          reply
            .header('content-type', 'application/x-x509-ca-cert')
            .header('content-disposition', 'attachment; filename="ferry-local-ca.crt"')
            .header('cache-control', 'no-cache')
            .send(certificateDer(caCert!)),
        );
      }
      // A certificate browsers trust by themselves: plain HTTP from another machine goes to HTTPS. A local CA's is
      // trusted only once a phone installed it, which needs the plain-HTTP page that explains how.
      if (settings.mode !== 'local') {
        app.addHook('onRequest', async (request, reply) => {
          if (isEncrypted(request) || fromThisMachine(request)) return;
          return reply.redirect(`https://${request.host}${request.url}`, 308);
        });
      }
      app.addHook('onClose', async () => {
        for (const t of timers) clearInterval(t);
      });
    },
    start(app) {
      if (settings.mode === 'local') {
        every(LOCAL_CHECK_MS, async () => {
          const local = await ensureLocalTls(localTlsDir(config.dataDir), localNames()).catch((err: unknown) => void app.log.error({ err }, 'could not renew the local certificate'));
          if (!local || local.made === 'nothing') return;
          caCert = local.caCert;
          use(local.server);
          if (local.made === 'ca') app.log.warn(`made a new local CA: devices must download ${CA_PATH} and trust it again`);
          else app.log.info('the machine\'s addresses changed or the certificate neared expiry: made a new server certificate');
        });
      } else {
        every(FILES_CHECK_MS, async () => {
          const next = await readCertificateFiles(settings.certFile, settings.keyFile).catch((err: unknown) => void app.log.error({ err }, 'could not read the certificate files again'));
          if (!next || next.cert === pem.cert) return;
          pem = next;
          use(next);
          app.log.info(`loaded the renewed certificate from ${settings.certFile}`);
        });
      }
    },
  };
}

const isEncrypted = (request: FastifyRequest): boolean => (request.raw.socket as { encrypted?: boolean }).encrypted === true;

/** A client on this machine: a loopback address, or a connection from one of the machine's own addresses to itself. */
function fromThisMachine(request: FastifyRequest): boolean {
  const socket = request.raw.socket;
  return isLoopbackHost(socket.remoteAddress?.replace(/^::ffff:/, '') ?? '') || (socket.remoteAddress !== undefined && socket.remoteAddress === socket.localAddress);
}

/**
 * The relay's HTTPS: which certificate it serves (files the operator gave, a local CA of its own, or ACME for a
 * public name), how that certificate is kept fresh, and the routes that go with it (the CA download, ACME
 * challenges, the redirect of plain HTTP from other machines). Plain HTTP keeps working on the same port for this
 * machine itself (see one-port.ts).
 */
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FerryError } from '../../src/core/errors.ts';
import type { RelayConfig, TlsSettings } from '../config.ts';
import type { AcmeCertificates } from './acme.ts';
import { CHALLENGE_PREFIX } from './acme-settings.ts';
import { certificateDer, certificateFacts, selfSigned, type Pem } from './certificates.ts';
import { ensureLocalTls, localTlsDir } from './local-ca.ts';
import { isLoopbackHost, machineNames } from './machine-names.ts';
import { shareOnePort } from './one-port.ts';
import { CA_PATH } from './ca-path.ts';

/** How often the machine's addresses (local CA) or the operator's certificate files are looked at again. */
const LOCAL_CHECK_MS = 10 * 60_000;
const FILES_CHECK_MS = 60 * 60_000;

type Log = FastifyInstance['log'];

export interface RelayTls {
  mode: TlsSettings['mode'];
  /** For Fastify's serverFactory: the HTTPS server, with plain HTTP on the same port. */
  serverFactory(handler: http.RequestListener): https.Server;
  /** The name of the CA phones install, as they list it (local CA only). */
  caName(): string | undefined;
  /** Routes and hooks: the CA download, ACME challenges, the redirect of plain HTTP from other machines. */
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
  // The app's log, once there is an app.
  let log: Log | undefined;
  let pem: Pem;
  let caCert: string | undefined;
  let acme: AcmeCertificates | undefined;
  let challengeServer: http.Server | undefined;
  let relayPort = config.port;
  if (settings.mode === 'files') {
    pem = await readCertificateFiles(settings.certFile, settings.keyFile);
  } else if (settings.mode === 'local') {
    const local = await ensureLocalTls(localTlsDir(config.dataDir), localNames());
    ({ server: pem, caCert } = local);
  } else {
    const { AcmeCertificates } = await import('./acme.ts');
    acme = new AcmeCertificates(config.dataDir, { domains: settings.domains, email: settings.email, directoryUrl: settings.directoryUrl }, { info: (m) => log?.info(m), error: (d, m) => log?.error(d, m) });
    // Until the CA has issued the first certificate, a throwaway one lets the relay listen (and answer challenges).
    pem = (await acme.stored()) ?? (await selfSigned({ dns: settings.domains, ips: [] }));
    // Opened now, so a port the process may not open stops the relay before it starts.
    if (settings.httpPort !== 0) challengeServer = await listenForChallenges(acme, config.host, settings.httpPort, () => relayPort);
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
      if (acme) {
        const challenges = acme.challenges;
        app.get(`${CHALLENGE_PREFIX}:token`, (request, reply) => {
          const answer = challenges.get((request.params as { token: string }).token);
          if (answer === undefined) return reply.code(404).type('text/plain').send('no such challenge');
          return reply.type('text/plain').send(answer);
        });
      }
      // A certificate browsers trust by themselves: plain HTTP from another machine goes to HTTPS. A local CA's is
      // trusted only once a phone installed it, which needs the plain-HTTP page that explains how.
      if (settings.mode !== 'local') {
        app.addHook('onRequest', async (request, reply) => {
          if (isEncrypted(request) || fromThisMachine(request) || request.url.startsWith(CHALLENGE_PREFIX)) return;
          return reply.redirect(`https://${request.host}${request.url}`, 308);
        });
      }
      app.addHook('onClose', async () => {
        for (const t of timers) clearInterval(t);
        acme?.close();
        if (challengeServer) await new Promise((resolve) => challengeServer!.close(resolve));
      });
    },
    start(app) {
      log = app.log;
      const address = app.server.address();
      if (address && typeof address === 'object') relayPort = address.port;
      if (settings.mode === 'local') {
        every(LOCAL_CHECK_MS, async () => {
          const local = await ensureLocalTls(localTlsDir(config.dataDir), localNames()).catch((err: unknown) => void app.log.error({ err }, 'could not renew the local certificate'));
          if (!local || local.made === 'nothing') return;
          caCert = local.caCert;
          use(local.server);
          if (local.made === 'ca') app.log.warn(`made a new local CA: devices must download ${CA_PATH} and trust it again`);
          else app.log.info('the machine\'s addresses changed or the certificate neared expiry: made a new server certificate');
        });
      } else if (settings.mode === 'files') {
        every(FILES_CHECK_MS, async () => {
          const next = await readCertificateFiles(settings.certFile, settings.keyFile).catch((err: unknown) => void app.log.error({ err }, 'could not read the certificate files again'));
          if (!next || next.cert === pem.cert) return;
          pem = next;
          use(next);
          app.log.info(`loaded the renewed certificate from ${settings.certFile}`);
        });
      } else {
        acme?.start(use);
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

async function readCertificateFiles(certFile: string, keyFile: string): Promise<Pem> {
  let pem: Pem;
  try {
    pem = { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  } catch (cause) {
    throw new FerryError('config/tls-files', `Cannot read the certificate ${certFile} or its key ${keyFile}: give readable PEM files with --tls-cert and --tls-key (FERRY_TLS_CERT, FERRY_TLS_KEY).`, { cause });
  }
  let matches = false;
  try {
    matches = certificateFacts(pem.cert).matches(pem.key);
  } catch (cause) {
    throw new FerryError('config/tls-files', `${certFile} or ${keyFile} is not a PEM certificate and private key: give the certificate (with its chain) in --tls-cert and its key in --tls-key.`, { cause });
  }
  if (!matches) throw new FerryError('config/tls-files', `The key ${keyFile} is not the key of the certificate ${certFile}: give the pair that belongs together.`);
  return pem;
}

/**
 * Port 80 for the CA's HTTP-01 challenges; every other request there goes to the relay's HTTPS port. A port the
 * process may not open stops the relay with the ways out.
 */
async function listenForChallenges(acme: AcmeCertificates, host: string, port: number, relayPort: () => number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith(CHALLENGE_PREFIX)) {
      const answer = acme.challenges.get(url.slice(CHALLENGE_PREFIX.length));
      res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'text/plain' }).end(answer ?? 'no such challenge');
      return;
    }
    const name = (req.headers.host ?? acme.settings.domains[0]!).replace(/:\d+$/, '');
    res.writeHead(308, { location: `https://${name}${relayPort() === 443 ? '' : `:${relayPort()}`}${url}` }).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause: NodeJS.ErrnoException) =>
      reject(new FerryError('config/acme-http-port', `Cannot listen on port ${port} for the ACME CA's challenges (${cause.code ?? cause.message}): run the relay with the right to open it (e.g. \`setcap cap_net_bind_service=+ep $(which node)\`), or forward port 80 to the relay's port and give --acme-http-port 0.`, { cause })),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}

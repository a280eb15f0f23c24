/**
 * HTTPS and plain HTTP on one port: the first byte of a connection tells them apart (22 opens a TLS handshake;
 * HTTP starts with a method name). The HTTPS server stays the one Fastify knows (its certificate can be swapped
 * with setSecureContext); plain connections go to an HTTP server with the same request and upgrade handlers, so
 * this machine's own clients (the embedded cloud worker, a browser on localhost) keep plain http://127.0.0.1, and
 * a phone that typed http:// gets an answer (a redirect, or the page that explains how to trust the relay).
 * Written here rather than taken from httpolyglot: Fastify must keep owning the HTTPS server itself.
 */
import type http from 'node:http';
import type https from 'node:https';
import type net from 'node:net';

const TLS_HANDSHAKE = 22;
/** A connection that sends nothing for this long is closed (the HTTP servers' own timeouts start after the sniff). */
const FIRST_BYTE_TIMEOUT_MS = 30_000;

export function shareOnePort(secure: https.Server, plain: http.Server): void {
  const tlsListeners = secure.listeners('connection') as ((socket: net.Socket) => void)[];
  secure.removeAllListeners('connection');
  plain.on('upgrade', (req, socket, head) => secure.emit('upgrade', req, socket, head));
  secure.on('connection', (socket: net.Socket) => {
    socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.once('readable', () => {
      const first = socket.read(1) as Buffer | null;
      socket.setTimeout(0);
      if (first === null) return void socket.destroy();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) for (const listener of tlsListeners) listener.call(secure, socket);
      else plain.emit('connection', socket);
    });
  });
  secure.on('close', () => plain.closeAllConnections());
}

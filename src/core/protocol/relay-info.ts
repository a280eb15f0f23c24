/**
 * What a relay says about how other devices reach it (server/api/info.ts): the address to put in share and pairing
 * links, whether it serves HTTPS and how, and whether it listens on this machine only.
 */
import * as v from 'valibot';
import { API_PREFIX } from './wire.ts';

/** GET → RelayInfo. */
export const infoPath = `${API_PREFIX}/info`;

export const RelayInfoSchema = v.object({
  /** The address other devices use (the operator's --public-url, or the LAN address); null: none is known. */
  publicUrl: v.nullable(v.pipe(v.string(), v.maxLength(2048), v.regex(/^https?:\/\/[^/]+$/))),
  /** off: plain HTTP; local: a CA of the relay's own (caPath downloads it); files: a certificate the operator gave. */
  tls: v.picklist(['off', 'local', 'files']),
  /** Where the local CA's certificate is downloaded, relative to the relay; null unless tls is local. */
  caPath: v.nullable(v.pipe(v.string(), v.maxLength(64))),
  /** The local CA's name as phones list it among their certificates; null unless tls is local. */
  caName: v.nullable(v.pipe(v.string(), v.maxLength(256))),
  listensOn: v.object({
    host: v.pipe(v.string(), v.maxLength(256)),
    port: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)),
    /** True when only this machine can connect (it listens on a loopback address). */
    localOnly: v.boolean(),
  }),
});
export type RelayInfo = v.InferOutput<typeof RelayInfoSchema>;

/**
 * The relay's model catalog for browsers: the Models screen offers these models (by name, with size, license and a
 * one-click download checked against the SHA-256 here), so a deployment's own entries (`ferry start --catalog`, e.g.
 * a mirror on its network) reach every device that uses this relay.
 */
import type { FastifyInstance } from 'fastify';
import type { ModelCatalog } from '../../src/core/llm/catalog.ts';
import { catalogPath } from '../../src/core/protocol/index.ts';

export function registerCatalogRoute(app: FastifyInstance, catalog: ModelCatalog): void {
  app.get(catalogPath, (_request, reply) => reply.header('cache-control', 'no-cache').send({ models: catalog.entries }));
}

/**
 * The relay's component library for hosts (src/core/protocol/components.ts): `GET /api/v2/components` lists the
 * builds it ships, so a session moving to its workers leaves them out; `GET /api/v2/components/<id>` serves one
 * build's image to a host that lacks it (a worker or device node attached with another library), which verifies it
 * against the id before loading it. Builds are looked up by id in the library: no path is built from the request.
 */
import type { FastifyInstance } from 'fastify';
import * as v from 'valibot';
import { FerryError } from '../../src/core/errors.ts';
import { ComponentIdSchema, componentPaths } from '../../src/core/protocol/index.ts';
import type { ComponentLibrary } from '../relay/component-library.ts';

export async function componentRoutes(app: FastifyInstance, opts: { library: ComponentLibrary }): Promise<void> {
  app.get(componentPaths.list, async (_request, reply) => {
    void reply.header('cache-control', 'no-cache');
    return { builds: [...opts.library.ids.keys()] };
  });

  app.get(componentPaths.build(':id'), async (request, reply) => {
    const id = (request.params as { id?: string }).id ?? '';
    if (!v.is(ComponentIdSchema, id) || !opts.library.ids.has(id)) {
      throw new FerryError('relay/unknown-component', `This relay has no component build ${id.slice(0, 16)}…; a host that lacks it needs a session that carries it.`);
    }
    const image = await opts.library.image(id);
    // A build is named by its content: it never changes.
    return reply.header('cache-control', 'public, max-age=31536000, immutable').type('application/octet-stream').send(Buffer.from(image.buffer, image.byteOffset, image.byteLength));
  });
}

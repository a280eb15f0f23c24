/**
 * Prometheus metrics (prom-client): one registry per relay instance, so tests and embedded relays never share
 * counters. Request counts and latency by route template (never the raw URL: ids would explode the label space),
 * plus the relay's own counters.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class RelayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'ferry_http_requests_total', help: 'HTTP requests by method, route and status.', labelNames: ['method', 'route', 'status'] as const, registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'ferry_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method and route.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly objectBytes = new Counter({ name: 'ferry_relay_object_bytes_total', help: 'Sealed object bytes uploaded (in) and downloaded (out).', labelNames: ['direction'] as const, registers: [this.registry] });
  readonly objectsStored = new Counter({ name: 'ferry_relay_objects_stored_total', help: 'Sealed objects newly stored (re-uploads of a held object are not counted).', registers: [this.registry] });
  readonly snapshots = new Counter({ name: 'ferry_relay_snapshot_writes_total', help: 'Snapshot publishes and updates.', labelNames: ['op'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ferry_' });
  }
}

export function registerMetrics(app: FastifyInstance, metrics: RelayMetrics): void {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const method = request.method;
    metrics.requests.inc({ method, route, status: String(reply.statusCode) });
    metrics.latency.observe({ method, route }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType).header('cache-control', 'no-store');
    return metrics.registry.metrics();
  });
}

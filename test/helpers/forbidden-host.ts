/**
 * A host that must never be contacted: it counts every TCP connection, on IPv4 and IPv6 loopback
 * alike, and if someone does get through it answers a valid PNG, so a proxy that followed would
 * say 200 instead of refusing. A count of zero is the proof that nothing was fetched from it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';
import { sunsetPng } from '../../scripts/png';

export interface ForbiddenHost {
  port: number;
  /** TCP connections accepted so far, whatever came (or did not come) over them. */
  contacts(): number;
}

/** Listens on `::` (dual-stack: 127.0.0.1, ::1 and 0.0.0.0 all reach it) until the test ends. */
export async function forbiddenHost(t: ExecutionContext): Promise<ForbiddenHost> {
  let contacts = 0;
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(sunsetPng(15, 10, 1)));
  server.on('connection', () => contacts++);
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '::', ipv6Only: false }, resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, contacts: () => contacts };
}

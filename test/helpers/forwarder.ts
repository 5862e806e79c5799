/**
 * A TCP forwarder standing in for a Kubernetes Service in front of one pod: CloudNativePG's `-rw` Service,
 * which follows the primary, or the network between a primary and its standby.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';

export interface Forwarder {
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /**
   * Where new connections go from now on. Undefined: nowhere, and each new connection is closed at once, as a
   * Service without a ready endpoint refuses it. Connections already made stay with their server until it goes.
   */
  pointAt(port: number | undefined): void;
  /** Stalls every connection, both ways: bytes are read and held, not passed on, as on a stalled network. */
  hold(): void;
  /** Passes the held bytes on, in order, and forwards again. */
  release(): void;
}

/**
 * Listens on a free port and forwards to `target` on 127.0.0.1. When one end of a connection fails, both are
 * closed; when one closes cleanly, the other is closed after what was sent before, unless bytes are held.
 *
 * Closed, never reset (`resetAndDestroy`): Node cannot reset a socket whose side is already ending (libuv
 * refuses, UV_EINVAL), leaves its handle open for good, and the process then spins at exit waiting for it.
 */
export async function startForwarder(t: ExecutionContext, target: number | undefined): Promise<Forwarder> {
  const pairs = new Set<Pair>();
  let holding = false;

  const server = createServer((client) => {
    if (target === undefined) return void client.destroy();
    const pair = new Pair(client, connect(target, '127.0.0.1'), holding);
    pairs.add(pair);
    pair.closed.then(() => pairs.delete(pair));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const pair of pairs) pair.close();
    await new Promise((resolve) => server.close(resolve));
  });

  return {
    port: (server.address() as { port: number }).port,
    pointAt: (port) => void (target = port),
    hold: () => {
      holding = true;
      for (const pair of pairs) pair.hold();
    },
    release: () => {
      holding = false;
      for (const pair of pairs) pair.release();
    },
  };
}

/** One forwarded connection: the client's socket and the one to the server. */
class Pair {
  private held: { to: Socket; chunk: Buffer }[] | undefined;
  readonly closed: Promise<void>;

  constructor(
    private readonly client: Socket,
    private readonly server: Socket,
    holding: boolean,
  ) {
    if (holding) this.hold();
    const sockets = [client, server];
    for (const [from, to] of [
      [client, server],
      [server, client],
    ] as const) {
      from.setNoDelay(true);
      from.on('data', (chunk: Buffer) => this.pass(to, chunk));
      // A clean close is passed on after what was sent before it, unless bytes are held: then it is cut.
      from.on('end', () => (this.held ? this.close() : to.end()));
      from.on('error', () => this.close());
    }
    this.closed = Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('close', resolve)))).then(() => undefined);
  }

  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const { to, chunk } of held) to.write(chunk);
  }

  /** Both ends closed, nothing held delivered: a connection through a dead pod or a cut network ends like this. */
  close(): void {
    this.held = undefined;
    for (const socket of [this.client, this.server]) socket.destroy();
  }

  private pass(to: Socket, chunk: Buffer): void {
    if (this.held) this.held.push({ to, chunk });
    else to.write(chunk);
  }
}

/**
 * The naive peer, the way many public solutions count: read the count, add one in JavaScript, write it
 * back. Two statements and no lock, so concurrent pings read the same count and overwrite each other.
 * Kept only to be measured against; never deployed.
 */
import { http } from '@google-cloud/functions-framework';
import { connect, readDatabaseConfig } from '../functions/shared/db';

const sql = connect(readDatabaseConfig(process.env), 'naive-pingpong');

http('naive-pingpong', async (_req, res) => {
  try {
    const [row] = await sql<[{ n: string }]>`select n from pings`;
    const n = Number(row.n);
    await sql`update pings set n = ${n + 1}`;
    res.type('text/plain').send(`pong ${n}`);
  } catch (error) {
    res.status(503).type('text/plain').send(`database unavailable: ${(error as Error).message}\n`);
  }
});

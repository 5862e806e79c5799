/** `npm run restore -- <dump file | backup folder> [--force]`: db/backups/restore.sh against the local database. */
import { existsSync } from 'node:fs';
import { exitWith, fromUserDirectory, readLocalDatabaseConfig, runDatabaseScript } from './local-database';

exitWith('restore', async () => {
  const args = process.argv.slice(2);
  const files = args.filter((arg) => !arg.startsWith('-'));
  const force = args.includes('--force');
  if (files.length !== 1 || args.length !== 1 + Number(force)) {
    console.error('usage: npm run restore -- <dump file | backup folder (its newest dump)> [--force]');
    return 2;
  }
  const dump = fromUserDirectory(process.env, files[0]!);
  if (!existsSync(dump)) throw new Error(`no such file or folder: ${dump}`);
  // Restoring onto a fresh machine is a reason to restore, so the embedded Postgres is created if need be.
  return runDatabaseScript('restore.sh', force ? [dump, '--force'] : [dump], readLocalDatabaseConfig(process.env), { createEmbedded: true });
});

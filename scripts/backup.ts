/** `npm run backup`: db/backups/backup.sh against the local database, into `backups/` (or BACKUP_DIR). */
import { exitWith, readLocalDatabaseConfig, runDatabaseScript } from './local-database';

exitWith('backup', () => runDatabaseScript('backup.sh', [], readLocalDatabaseConfig(process.env), { createEmbedded: false }));

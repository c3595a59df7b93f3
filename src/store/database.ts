import Database from 'better-sqlite3';
import { migrate } from './migrations.js';

/** Opens (creating if needed) the state database with the settings every store relies on. */
export function openDatabase(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

/**
 * A real ImageService for tests: its own directory, a real SQLite image store and a silent logger.
 * Only the registry is supplied by the test (a real client, or a source that must not be called).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ImageService, type ImageServiceOptions } from '../image-service.js';
import type { ImageSource } from '../image-source.js';
import { normalizeReference } from '../registry-source.js';
import { SqliteImageStore } from '../../store/sqlite-image-store.js';
import { openDatabase } from '../../store/database.js';

/** A source for tests that only import: any registry call is a bug. */
export const noRegistry: ImageSource = {
  resolve: () => Promise.reject(new Error('this test must not contact a registry')),
  downloadBlob: () => Promise.reject(new Error('this test must not contact a registry')),
};

export interface ImageServiceFixture {
  dir: string;
  images: ImageService;
  close(): void;
}

export async function imageServiceFixture(options: Partial<ImageServiceOptions> = {}): Promise<ImageServiceFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'hc-images-'));
  const db = openDatabase(join(dir, 'state.db'));
  const images = new ImageService({
    dir: join(dir, 'images'),
    store: new SqliteImageStore(db),
    registry: noRegistry,
    normalize: normalizeReference,
    usersOf: () => [],
    logger: pino({ level: 'silent' }),
    ...options,
  });
  await images.init();
  return {
    dir,
    images,
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

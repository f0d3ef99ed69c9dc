import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { LocalNotifier, readAlerts } from '../../src/backends/local/local-notifier.ts';
import { notifierConformance } from './notifier.case.ts';

// The local backend's file channel (the console is off; the webhook is covered by
// src/backends/local/local-notifier.test.ts).
notifierConformance('local (file)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-notifier-'));
  const file = join(dir, 'home', 'alerts.ndjson');
  const notifier = new LocalNotifier({ file, console: false });
  return {
    notifier: {
      notify: async (alert) => {
        const result = await notifier.notify(alert);
        expect(result.delivered).toEqual(['file']);
        return result;
      },
    },
    delivered: () => readAlerts(file),
    close: () => rm(dir, { recursive: true, force: true }),
  };
});

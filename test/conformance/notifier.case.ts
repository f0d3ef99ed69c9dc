import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Alert } from '../../src/core/alert.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';

/**
 * The {@link Notifier} contract, for any backend. `open` returns a notifier, `delivered()` (every
 * alert the backend's channel under test has received so far, oldest first: for the local backend
 * the alert file, for AWS the messages of a queue subscribed to the SNS topic) and a `close`.
 * Each test marks its alerts with a random pipeline name and looks only at those, so the suite
 * also runs against a shared, pre-deployed topic.
 */
export function notifierConformance(
  backend: string,
  open: () => Promise<{ notifier: Notifier; delivered(): Promise<Alert[]>; close(): Promise<void> }>,
): void {
  describe(`Notifier conformance: ${backend}`, () => {
    let notifier: Notifier;
    let delivered: () => Promise<Alert[]>;
    let close: () => Promise<void>;
    /** Random pipeline name of the current test's alerts. */
    let pipeline: string;

    beforeEach(async () => {
      ({ notifier, delivered, close } = await open());
      pipeline = `conformance-${randomUUID()}`;
    });
    afterEach(async () => {
      await close();
    });

    /** The current test's alerts among everything delivered. */
    async function mine(): Promise<Alert[]> {
      return (await delivered()).filter((alert) => alert.pipeline === pipeline);
    }

    it('delivers an alert with every field intact', async () => {
      const alert: Alert = {
        severity: 'error',
        title: 'Workflow gharchive-hourly failed in state Transform — “quoted” ✓',
        pipeline,
        workflow: 'gharchive-hourly',
        executionId: 'exec-0001',
        state: 'Transform',
        error: 'SourceUnavailableError',
        cause:
          'https://data.gharchive.org/2015-01-01-0.json.gz is unavailable after 6 attempts\nline two\ttabbed',
        at: '2024-05-01T10:00:00.000Z',
        details: {
          recover: 'sluice run gharchive --from 2015-01-01T00',
          failedUnits: 3,
          retryable: true,
          nested: { hours: ['2015-01-01-0', '2015-01-01-1'], none: null },
        },
      };
      const result = await notifier.notify(alert);
      expect(result.failed).toEqual([]);
      expect(await mine()).toStrictEqual([alert]);
    });

    it('delivers a minimal alert without adding fields', async () => {
      const alert: Alert = {
        severity: 'info',
        title: 'nothing to do',
        pipeline,
        at: '2024-05-01T10:00:00.000Z',
      };
      await notifier.notify(alert);
      const [received, ...rest] = await mine();
      expect(rest).toEqual([]);
      expect(received).toStrictEqual(alert);
      expect(Object.keys(received!).sort()).toEqual(['at', 'pipeline', 'severity', 'title']);
    });

    it('keeps the order of several alerts', async () => {
      const alerts: Alert[] = (['info', 'warning', 'error', 'warning', 'info'] as const).map(
        (severity, i) => ({
          severity,
          title: `alert ${i}`,
          pipeline,
          at: new Date(Date.UTC(2024, 4, 1, 10, 0, i)).toISOString(),
        }),
      );
      for (const alert of alerts) await notifier.notify(alert);
      expect((await mine()).map((a) => a.title)).toEqual(alerts.map((a) => a.title));
      expect(await mine()).toStrictEqual(alerts);
    });

    it('resolves with the channel in delivered and nothing failed', async () => {
      const result = await notifier.notify({
        severity: 'warning',
        title: 'quality check',
        pipeline,
        at: '2024-05-01T10:00:00.000Z',
      });
      expect(result.delivered.length).toBeGreaterThan(0);
      for (const channel of result.delivered) expect(typeof channel).toBe('string');
      expect(new Set(result.delivered).size).toBe(result.delivered.length);
      expect(result.failed).toEqual([]);
    });
  });
}

import { describe, expect, it } from 'vitest';
import { allPages } from '../../src/core/ports/kv-table.ts';
import { createTestHome } from '../../test/helpers/context.ts';
import { quotesPipeline } from './definition.ts';
import { quotesHandlers } from './functions.ts';

describe('quotes-poll without an api_url', () => {
  it('stores nothing and does not fail (a schedule firing every minute raises no alert)', async () => {
    const t = await createTestHome();
    try {
      const handlers = quotesHandlers({
        ctx: t.ctx,
        // What `sluice up` reads: the definition's default while nothing is configured.
        config: { get: (key) => quotesPipeline.config?.[key]?.default },
        notifier: { notify: async () => ({ delivered: [], failed: [] }) },
      });
      const context = {
        functionName: 'quotes-poll',
        awsRequestId: 'r1',
        getRemainingTimeInMillis: () => 60_000,
      };
      await expect(
        handlers['quotes-poll']!({ scheduledTime: '2026-01-01T00:00:00Z' }, context),
      ).resolves.toEqual({
        skipped: 'api_url is not configured',
      });
      const raw = await t.backend.kv.table('quotes_raw', {
        hashKey: { name: 'ingested_date', type: 'S' },
        rangeKey: { name: 'ingested_at', type: 'S' },
      });
      const items = [];
      for await (const item of allPages((cursor) => raw.scan(cursor ? { cursor } : {}))) items.push(item);
      expect(items).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

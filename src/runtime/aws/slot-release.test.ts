process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { readFileSync } from 'node:fs';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SlotTable, startSlotTable } from '../../../test/helpers/slot-table.ts';
import { slotReleaseHandler } from './lambda.ts';
import { type ExecutionStatusChangeEvent, releaseSlot } from './slot-release.ts';

/**
 * The concurrency slot release (EventBridge "Step Functions Execution Status Change" → Lambda) against
 * dynalite, with the documented event (test/fixtures/aws-events/sfn-execution-status-change.json).
 */
const event = JSON.parse(
  readFileSync(
    new URL('../../../test/fixtures/aws-events/sfn-execution-status-change.json', import.meta.url),
    'utf8',
  ),
) as ExecutionStatusChangeEvent;
const ARN = event.detail?.executionArn as string;
const OTHER = 'arn:aws:states:us-east-1:123456789012:execution:hashtags-kinesis-landing:manual-other';
const TABLE = 'sluice-hashtags-sluice_workflow_slots';

let slots: SlotTable;
let server: SlotTable['server'];
let ddb: SlotTable['ddb'];

beforeAll(async () => {
  slots = await startSlotTable(TABLE);
  ({ server, ddb } = slots);
});

afterAll(() => slots?.close());

/** Two holders: the fixture's execution and another one (as the state machine's AcquireSlot writes them). */
async function seed(): Promise<void> {
  await ddb.send(
    new PutItemCommand({
      TableName: TABLE,
      Item: {
        workflow: { S: 'hashtags-kinesis-landing' },
        running: { N: '2' },
        [ARN]: { S: '2024-06-10T19:40:00.000Z' },
        [OTHER]: { S: '2024-06-10T19:41:00.000Z' },
      },
    }),
  );
}

async function item(): Promise<Record<string, unknown> | undefined> {
  return (
    await ddb.send(
      new GetItemCommand({
        TableName: TABLE,
        Key: { workflow: { S: 'hashtags-kinesis-landing' } },
        ConsistentRead: true,
      }),
    )
  ).Item as Record<string, unknown> | undefined;
}

describe('releaseSlot', () => {
  it('gives back the slot of the event execution once; a second delivery is a no-op', async () => {
    await seed();
    expect(event['detail-type']).toBe('Step Functions Execution Status Change');
    expect(await releaseSlot(ddb, TABLE, event)).toEqual({
      workflow: 'hashtags-kinesis-landing',
      executionArn: ARN,
      released: true,
    });
    const expected = {
      workflow: { S: 'hashtags-kinesis-landing' },
      running: { N: '1' },
      [OTHER]: { S: '2024-06-10T19:41:00.000Z' },
    };
    expect(await item()).toEqual(expected);
    expect(await releaseSlot(ddb, TABLE, event)).toMatchObject({ released: false });
    expect(await item()).toEqual(expected);
  });

  it('an execution that never took a slot (aborted while waiting) changes nothing', async () => {
    await seed();
    const waiting = {
      ...event,
      detail: { ...event.detail, executionArn: `${ARN.slice(0, ARN.lastIndexOf(':'))}:never-acquired` },
    };
    expect(await releaseSlot(ddb, TABLE, waiting)).toMatchObject({ released: false });
    expect((await item())?.running).toEqual({ N: '2' });
  });

  it('rejects an event without an execution ARN, naming what it expected', async () => {
    await expect(releaseSlot(ddb, TABLE, { detail: {} })).rejects.toThrow(
      /detail\.executionArn arn:aws:states:<region>:<account>:execution:<state machine>:<name>, got ""/,
    );
  });
});

describe('slotReleaseHandler (the Lambda entry point)', () => {
  it('reads SLUICE_SLOTS_TABLE and releases through the default client (endpoint from AWS_ENDPOINT_URL_DYNAMODB)', async () => {
    await seed();
    const saved = { ...process.env };
    delete process.env.SLUICE_SLOTS_TABLE;
    await expect(slotReleaseHandler(event)).rejects.toThrow(/SLUICE_SLOTS_TABLE is not set/);
    Object.assign(process.env, {
      SLUICE_SLOTS_TABLE: TABLE,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'x',
    });
    try {
      expect(await slotReleaseHandler(event)).toMatchObject({ released: true });
      expect((await item())?.running).toEqual({ N: '1' });
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });
});

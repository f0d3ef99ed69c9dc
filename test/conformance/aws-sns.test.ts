// The aws backend's notifier (SNS) against aws-sdk-client-mock: no SNS emulator exists here, so this
// is not SNS. The mock records each Publish as a topic would deliver it to a raw SQS subscription; the
// conformance suite reads alerts back from the messages with parseSnsAlert.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { PublishCommand, type PublishCommandInput, SNSClient, ThrottledException } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { parseSnsAlert, SnsNotifier } from '../../src/backends/aws/sns-notifier.ts';
import type { Alert } from '../../src/core/alert.ts';
import { notifierConformance } from './notifier.case.ts';

const topicArn = 'arn:aws:sns:eu-west-1:123456789012:sluice-gharchive-alerts';

function newClient(): SNSClient {
  return new SNSClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' },
  });
}

notifierConformance('aws (SNS, aws-sdk-client-mock)', async () => {
  const client = newClient();
  const mock = mockClient(client);
  const published: PublishCommandInput[] = [];
  let n = 0;
  mock.on(PublishCommand).callsFake((input: PublishCommandInput) => {
    published.push(input);
    return { MessageId: `00000000-0000-0000-0000-${String(++n).padStart(12, '0')}` };
  });
  const notifier = new SnsNotifier(client, { topicArn });
  return {
    notifier: {
      notify: async (alert) => {
        const result = await notifier.notify(alert);
        expect(result).toEqual({ delivered: ['sns'], failed: [] });
        return result;
      },
    },
    delivered: async () =>
      published.map((p) => parseSnsAlert(p.Message ?? '')).filter((a): a is Alert => !!a),
    close: async () => {
      mock.restore();
    },
  };
});

describe('SNS Publish input (API_Publish)', () => {
  const alert: Alert = {
    severity: 'error',
    title: 'Workflow gharchive-hourly failed in state Transform — “quoted” ✓',
    pipeline: 'gharchive',
    workflow: 'gharchive-hourly',
    executionId: 'exec-1',
    state: 'Transform',
    error: 'SourceUnavailableError',
    cause: 'unavailable\nafter 6 attempts',
    at: '2024-05-01T10:00:00.000Z',
  };

  it('publishes Subject, Message (text + JSON) and MessageAttributes to the topic', async () => {
    const client = newClient();
    const mock = mockClient(client);
    mock.on(PublishCommand).resolves({ MessageId: 'm-1' });
    const result = await new SnsNotifier(client, { topicArn }).notify(alert);
    expect(result).toEqual({ delivered: ['sns'], failed: [] });
    const calls = mock.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(calls).toEqual([
      {
        TopicArn: topicArn,
        Subject: '[ERROR] gharchive: Workflow gharchive-hourly failed in state Transform - "quoted" ?',
        Message: [
          '[ERROR] Workflow gharchive-hourly failed in state Transform — “quoted” ✓',
          '  pipeline: gharchive',
          '  workflow: gharchive-hourly',
          '  execution: exec-1',
          '  failed state: Transform',
          '  error: SourceUnavailableError',
          '  cause: unavailable\nafter 6 attempts',
          '  at: 2024-05-01T10:00:00.000Z',
          '',
          '-- sluice alert (JSON) --',
          JSON.stringify(alert),
        ].join('\n'),
        MessageAttributes: {
          severity: { DataType: 'String', StringValue: 'error' },
          pipeline: { DataType: 'String', StringValue: 'gharchive' },
        },
      },
    ]);
    mock.restore();
  });

  it('cuts a long subject at a word to at most 99 ASCII characters', async () => {
    const notifier = new SnsNotifier(newClient(), { topicArn });
    const subject =
      notifier.publishInput({ ...alert, title: `Über ${'lange Zeile '.repeat(20)}` }).Subject ?? '';
    expect(subject.length).toBeLessThanOrEqual(99);
    expect(subject).toMatch(/^\[ERROR\] gharchive: Uber lange Zeile .*Zeile\.\.\.$/);
    expect(/^[\x20-\x7e]+$/.test(subject)).toBe(true);
  });

  it('retries throttling with backoff and reports the channel; gives up on other errors at once, never rejecting', async () => {
    const client = newClient();
    const mock = mockClient(client);
    const throttled = new ThrottledException({
      message: 'Rate exceeded',
      $metadata: { httpStatusCode: 400 },
    });
    mock.on(PublishCommand).rejectsOnce(throttled).rejectsOnce(throttled).resolves({ MessageId: 'm-2' });
    const sleeps: number[] = [];
    const clock = { now: () => new Date(0), sleep: async (ms: number) => void sleeps.push(ms) };
    const notifier = new SnsNotifier(client, { topicArn, clock, random: () => 0.5, baseDelayMs: 100 });
    expect(await notifier.notify(alert)).toEqual({ delivered: ['sns'], failed: [] });
    expect(sleeps).toEqual([50, 100]);
    expect(mock.commandCalls(PublishCommand)).toHaveLength(3);

    mock.reset();
    const denied = Object.assign(new Error('not authorized to publish'), {
      name: 'AuthorizationErrorException',
    });
    mock.on(PublishCommand).rejects(denied);
    const result = await notifier.notify(alert);
    expect(result.delivered).toEqual([]);
    expect(result.failed).toEqual([
      {
        channel: 'sns',
        error: `SNS topic ${topicArn} refused the alert: AuthorizationErrorException: not authorized to publish`,
      },
    ]);
    expect(mock.commandCalls(PublishCommand)).toHaveLength(1);

    mock.reset();
    mock.on(PublishCommand).rejects(throttled);
    const exhausted = await new SnsNotifier(client, { topicArn, clock, retries: 1 }).notify(alert);
    expect(exhausted.failed[0]?.error).toMatch(/failed after 2 attempts: ThrottledException: Rate exceeded/);
    mock.restore();
  });

  it('keeps a message within 256 KiB, cutting the text and then the cause', () => {
    const notifier = new SnsNotifier(newClient(), { topicArn });
    const huge = { ...alert, cause: 'x'.repeat(300_000) };
    const message = notifier.publishInput(huge).Message ?? '';
    expect(Buffer.byteLength(message)).toBeLessThanOrEqual(262_144);
    const parsed = parseSnsAlert(message);
    expect(parsed?.details).toEqual({ truncated: true });
    expect(parsed?.title).toBe(alert.title);
    expect((parsed?.cause ?? '').length).toBeGreaterThan(200_000);
  });

  it('refuses a topic ARN that is not one', () => {
    expect(() => new SnsNotifier(newClient(), { topicArn: 'sluice-alerts' })).toThrow(/SNS topic ARN/);
  });
});

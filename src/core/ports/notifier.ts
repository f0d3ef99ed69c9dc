import type { Alert } from '../alert.ts';

/**
 * Notifier port: delivers alerts. Local backend: the console, a JSON-lines file under the home,
 * and an optional webhook (POST JSON, retried). AWS backend: an SNS topic (e-mail subscription).
 * Contract: test/conformance/notifier.case.ts.
 */
export interface Notifier {
  /**
   * Delivers one alert to every channel. Resolves when all channels have it or gave up after their
   * retries; never rejects because one channel failed (the failure is reported in the result).
   */
  notify(alert: Alert): Promise<NotifyResult>;
}

/** Per-channel outcome of {@link Notifier.notify}. */
export interface NotifyResult {
  readonly delivered: readonly string[];
  readonly failed: readonly { readonly channel: string; readonly error: string }[];
}

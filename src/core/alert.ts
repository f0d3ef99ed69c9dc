/**
 * An alert: something a person should look at. Every failed workflow execution raises one
 * naming the pipeline, workflow, execution, failing state, error and cause; pipelines raise their
 * own (a tampering detector, a quality check).
 */
export interface Alert {
  readonly severity: 'info' | 'warning' | 'error';
  /** One line: what happened. */
  readonly title: string;
  readonly pipeline: string;
  readonly workflow?: string;
  readonly executionId?: string;
  /** The state that failed. */
  readonly state?: string;
  /** The ASL error name, e.g. `SourceUnavailableError`, `States.Timeout`. */
  readonly error?: string;
  readonly cause?: string;
  /** ISO-8601 UTC. */
  readonly at: string;
  /** Anything else worth showing (a command to recover, counts). */
  readonly details?: { readonly [key: string]: unknown };
}

/** Multi-line text of an alert, for consoles and e-mail bodies. */
export function formatAlert(alert: Alert): string {
  const lines = [`[${alert.severity.toUpperCase()}] ${alert.title}`, `  pipeline: ${alert.pipeline}`];
  if (alert.workflow) lines.push(`  workflow: ${alert.workflow}`);
  if (alert.executionId) lines.push(`  execution: ${alert.executionId}`);
  if (alert.state) lines.push(`  failed state: ${alert.state}`);
  if (alert.error) lines.push(`  error: ${alert.error}`);
  if (alert.cause) lines.push(`  cause: ${alert.cause}`);
  for (const [key, value] of Object.entries(alert.details ?? {})) lines.push(`  ${key}: ${String(value)}`);
  lines.push(`  at: ${alert.at}`);
  return lines.join('\n');
}

/**
 * Classifying AWS SDK v3 errors, shared by the aws adapters so they agree on what "try again"
 * means. An SDK v3 service error is an `Error` whose `name` is the service's error code
 * (`ThrottlingException`), with `$metadata.httpStatusCode` and, when the service model marks the
 * error retryable (throttling or transient), `$retryable` (`{ throttling?: boolean }`); see
 * https://docs.aws.amazon.com/AWSJavaScriptSDK/v3/latest/Package/-smithy-smithy-client/ and the
 * "Common Errors" pages of each API reference (e.g.
 * https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html).
 */
import { SluiceError } from '../../core/errors.ts';

/** The parts of a thrown value that the adapters classify by. */
export interface AwsErrorFields {
  /** The AWS error code (`ThrottlingException`), or `Error` when there is none. */
  readonly name: string;
  /** The error's message, or the value as a string when it is not an `Error`. */
  readonly message: string;
  /** HTTP status of the response (`$metadata.httpStatusCode`); undefined before a response. */
  readonly status: number | undefined;
  /** True when the SDK marked the error retryable (`$retryable` is set). */
  readonly sdkRetryable: boolean;
}

/** The {@link AwsErrorFields} of anything thrown (an SDK error, an `Error`, or another value). */
export function awsErrorFields(error: unknown): AwsErrorFields {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: unknown;
    message?: unknown;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  return {
    name: typeof e.name === 'string' && e.name.length > 0 ? e.name : 'Error',
    message: typeof e.message === 'string' ? e.message : String(error),
    status: e.$metadata?.httpStatusCode,
    sdkRetryable: e.$retryable !== undefined,
  };
}

/**
 * True when a call that failed with `error` may succeed if sent again: its name is one of the
 * service's throttling or transient error codes (`transient`, a set of names or a pattern over
 * the name), its HTTP status is 5xx, or the SDK marked it retryable (`$retryable`).
 */
export function isTransientAwsError(error: unknown, transient: ReadonlySet<string> | RegExp): boolean {
  const { name, status, sdkRetryable } = awsErrorFields(error);
  const named = transient instanceof RegExp ? transient.test(name) : transient.has(name);
  return named || (status !== undefined && status >= 500) || sdkRetryable;
}

/**
 * A failed call as a {@link SluiceError} `"<doing> failed: <AWS name>: <message>"` with `code`,
 * `retryable` by {@link isTransientAwsError} (with `transient`) and the SDK error as `cause`;
 * a {@link SluiceError} is returned unchanged.
 */
export function awsCallError(
  error: unknown,
  doing: string,
  code: string,
  transient: ReadonlySet<string> | RegExp,
): SluiceError {
  if (error instanceof SluiceError) return error;
  const { name, message } = awsErrorFields(error);
  return new SluiceError(`${doing} failed: ${name}: ${message}`, {
    code,
    retryable: isTransientAwsError(error, transient),
    cause: error,
  });
}

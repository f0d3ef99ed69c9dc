import type { AwsBackendConfig } from './config.ts';

/**
 * Constructor options shared by every AWS SDK v3 client the aws backend creates: the region,
 * and for tests an emulator endpoint. Credentials are left to the SDK's default provider chain
 * (https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html): sluice never
 * reads or stores them.
 *
 * For S3 with an endpoint (s3rver) it adds path-style addressing and checksums only when required:
 * otherwise streamed uploads are stored with the aws-chunked envelope by s3rver (TOOLCHAIN.md).
 */
export function clientOptions(
  config: Pick<AwsBackendConfig, 'region' | 'endpoints'>,
  service: string,
): Record<string, unknown> {
  const endpoint = config.endpoints?.[service];
  const options: Record<string, unknown> = { region: config.region };
  if (endpoint !== undefined) {
    options.endpoint = endpoint;
    // Emulators accept any credentials; never used against AWS (endpoints are test-only).
    options.credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    if (service === 's3') {
      options.forcePathStyle = true;
      options.requestChecksumCalculation = 'WHEN_REQUIRED';
      options.responseChecksumValidation = 'WHEN_REQUIRED';
    }
  }
  return options;
}

/** Silences the SDK's Node 20 end-of-support notice (TOOLCHAIN.md); called before a client is created. */
export function quietSdkNodeWarning(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

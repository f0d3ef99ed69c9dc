import { LAYERS, type Layer } from '../../src/core/layer.ts';

/**
 * One bucket per layer named `<prefix>-<layer>` (`acme-landing`, `acme-staging`, ...), as the aws
 * backend's `buckets` option and `SLUICE_BUCKET_<LAYER>` variables take them.
 */
export function layerBuckets(prefix: string): Readonly<Record<Layer, string>> {
  return Object.fromEntries(LAYERS.map((layer) => [layer, `${prefix}-${layer}`])) as Record<Layer, string>;
}

/** The buckets of the aws conformance suites: `sluice-test-landing`, `sluice-test-staging`, ... */
export const TEST_BUCKETS = layerBuckets('sluice-test');

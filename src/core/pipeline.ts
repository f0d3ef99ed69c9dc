import type { DatasetDefinition } from './dataset.ts';

/** Where a pipeline's data comes from. */
export interface SourceDefinition {
  readonly name: string;
  /** `http-archive`: files published at predictable URLs (GH Archive's hourly files). */
  readonly kind: 'http-archive' | 'http-api' | 'stream' | 'files';
  readonly description: string;
  /** Default base URL or location. */
  readonly defaultLocation?: string;
}

/**
 * A step of a pipeline: a unit of work that reads from one layer (or the source) and writes to
 * the next, handing over only through storage (as dlt's extract / normalize / load), so any step
 * can be re-run from what the previous one left.
 */
export interface StepDefinition {
  readonly name: string;
  readonly description: string;
  /** Layer read (or `source`) and layer written. */
  readonly reads: 'source' | 'landing' | 'staging' | 'analytical';
  readonly writes: 'landing' | 'staging' | 'analytical';
}

/** A pipeline: its source, steps and the datasets it publishes. Pure data; no I/O. */
export interface PipelineDefinition {
  /** Lower-case name; also the catalog database of its tables. */
  readonly name: string;
  readonly description: string;
  readonly source: SourceDefinition;
  readonly steps: readonly StepDefinition[];
  readonly datasets: readonly DatasetDefinition[];
}

import type { PipelineContext } from './context.ts';
import type { DatasetDefinition } from './dataset.ts';
import type { FunctionDefinition, FunctionHandler } from './function.ts';
import type { JsonValue } from './ports/kv-table.ts';
import type { Notifier } from './ports/notifier.ts';
import type { TableChecks } from './quality.ts';
import type { NamedQuery } from './query.ts';
import type { ScheduleDefinition } from './schedule.ts';
import type { TriggerDefinition } from './trigger.ts';
import type { WorkflowDefinition } from './workflow.ts';

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

/** A configuration entry of a pipeline, read from the `config` table at run time. */
export interface ConfigEntry {
  readonly description: string;
  /** Used when the `config` table has no value. */
  readonly default: JsonValue;
}

/**
 * A pipeline: its source, steps, the datasets it publishes, and how it runs itself: functions,
 * ASL workflows calling them, schedules and object-created triggers starting the workflows, and
 * its configuration keys. Pure data; no I/O. The same definition runs under `sluice up` and
 * deploys to AWS.
 */
export interface PipelineDefinition {
  /** Lower-case name; also the catalog database of its tables. */
  readonly name: string;
  readonly description: string;
  readonly source: SourceDefinition;
  readonly steps: readonly StepDefinition[];
  readonly datasets: readonly DatasetDefinition[];
  /**
   * Warehouse tables it loads (Redshift-compatible DDL). A pipeline with any needs the warehouse:
   * `sluice up` and `sluice demo` start the local one.
   */
  readonly warehouseTables?: readonly WarehouseTableDefinition[];
  /** Data-quality checks per table (src/core/quality.ts); results in `sluice.quality_results`. */
  readonly checks?: readonly TableChecks[];
  /** Named queries over its datasets (views in `sluice query`; Athena named queries on AWS). */
  readonly queries?: readonly NamedQuery[];
  readonly functions?: readonly FunctionDefinition[];
  readonly workflows?: readonly WorkflowDefinition[];
  readonly schedules?: readonly ScheduleDefinition[];
  readonly triggers?: readonly TriggerDefinition[];
  /** Configuration keys and their defaults (`sluice config set <pipeline> <key> <value>`). */
  readonly config?: { readonly [key: string]: ConfigEntry };
}

/** A warehouse table of a pipeline. */
export interface WarehouseTableDefinition {
  readonly name: string;
  /** `CREATE TABLE IF NOT EXISTS ...` in the SQL subset PostgreSQL and Redshift share. */
  readonly ddl: string;
}

/** Reads a pipeline's configuration as it is now (changes arrive without a restart). */
export interface ConfigReader {
  get(key: string): JsonValue | undefined;
}

/** What a pipeline's function handlers are built with. */
export interface PipelineRuntime {
  readonly ctx: PipelineContext;
  /** The pipeline's live configuration (the `config` table over the definition's defaults). */
  readonly config: ConfigReader;
  /** Raises the pipeline's own alerts (a detector's findings, a quality gate). */
  readonly notifier: Notifier;
}

/** A pipeline as shipped: its definition and the handlers of its functions. */
export interface PipelineModule {
  readonly definition: PipelineDefinition;
  /** Handlers by function name; one for every function of the definition. */
  handlers(runtime: PipelineRuntime): Readonly<Record<string, FunctionHandler>>;
}

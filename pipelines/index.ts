import type { PipelineDefinition } from '../src/core/pipeline.ts';
import { gharchivePipeline } from './gharchive/definition.ts';

/**
 * The reference pipelines shipped with sluice, by name. Each is written against the ports only,
 * so the same definition runs on the local backend and on AWS.
 */
export const pipelines: Readonly<Record<string, PipelineDefinition>> = {
  gharchive: gharchivePipeline,
};

/** Names of the shipped pipelines, for messages. */
export const pipelineNames = Object.keys(pipelines);

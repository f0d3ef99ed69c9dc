import type { PipelineDefinition, PipelineModule } from '../src/core/pipeline.ts';
import { gharchivePipeline } from './gharchive/definition.ts';
import { gharchiveHandlers } from './gharchive/functions.ts';
import { hashtagsPipeline } from './hashtags/definition.ts';
import { hashtagsHandlers } from './hashtags/functions.ts';
import { nbaPipeline } from './nba/definition.ts';
import { nbaHandlers } from './nba/functions.ts';
import { quotesPipeline } from './quotes/definition.ts';
import { quotesHandlers } from './quotes/functions.ts';
import { tollsPipeline } from './tolls/definition.ts';
import { tollsHandlers } from './tolls/functions.ts';

/**
 * The reference pipelines shipped with sluice, by name: definitions and function handlers. Each
 * is written against the ports only, so the same definition runs on the local backend and on AWS.
 */
export const pipelineModules: Readonly<Record<string, PipelineModule>> = {
  gharchive: { definition: gharchivePipeline, handlers: gharchiveHandlers },
  hashtags: { definition: hashtagsPipeline, handlers: hashtagsHandlers },
  tolls: { definition: tollsPipeline, handlers: tollsHandlers },
  quotes: { definition: quotesPipeline, handlers: quotesHandlers },
  nba: { definition: nbaPipeline, handlers: nbaHandlers },
};

/** The shipped pipeline definitions, by name. */
export const pipelines: Readonly<Record<string, PipelineDefinition>> = Object.fromEntries(
  Object.entries(pipelineModules).map(([name, module]) => [name, module.definition]),
);

/** Names of the shipped pipelines, for messages. */
export const pipelineNames = Object.keys(pipelines);

export type * from './backend.ts';
export type * from './catalog.ts';
export { qualifiedName } from './catalog.ts';
export type * from './kv-table.ts';
export { allPages } from './kv-table.ts';
export type * from './object-store.ts';
export type * from './query-engine.ts';
export type * from './stream.ts';
export {
  compareSequenceNumbers,
  ExpiredIteratorError,
  StreamArgumentError,
  StreamExistsError,
  StreamNotFoundError,
} from './stream.ts';
export type * from './warehouse.ts';
export { WarehouseError } from './warehouse.ts';

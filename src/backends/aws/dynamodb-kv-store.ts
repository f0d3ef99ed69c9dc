import {
  type AttributeValue,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  type TableDescription,
  UpdateTableCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
  type ShardIteratorType,
  type _Record as StreamRecord,
} from '@aws-sdk/client-dynamodb-streams';
import { ConditionFailedError, NotFoundError, SluiceError } from '../../core/errors.ts';
import type {
  ChangeRecord,
  Condition,
  Item,
  JsonValue,
  KeyAttribute,
  KeySchema,
  KeyValue,
  KvStore,
  KvStoreCapabilities,
  KvTable,
  Page,
  PageOptions,
  RangeCondition,
  StreamPosition,
} from '../../core/ports/kv-table.ts';
import { compareSequence } from '../../core/ports/kv-table.ts';

/**
 * Items per page of {@link KvTable.query} and {@link KvTable.scan} when no `limit` is given: the
 * local backend's page size, so both backends page alike. DynamoDB also ends a page at 1 MB of
 * items read (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html),
 * so a page may hold fewer items than the limit and still carry a cursor.
 */
export const DEFAULT_PAGE_SIZE = 1000;

/** Most records one `GetRecords` call returns (DynamoDB Streams API reference, `Limit`: 1..1000). */
export const MAX_GET_RECORDS = 1000;

/**
 * Consecutive empty `GetRecords` answers after which an open shard is taken as read to its tip.
 * DynamoDB Streams may answer empty before the end of a shard ("it might take multiple calls to
 * get to a portion of the shard that contains stream records", GetRecords API reference); a
 * closed shard is read until `NextShardIterator` is absent.
 */
export const EMPTY_READS_AT_TIP = 3;

/** Longest wait for a table to become `ACTIVE` after CreateTable/UpdateTable, in ms. */
export const TABLE_ACTIVE_TIMEOUT_MS = 5 * 60 * 1000;

/** Options of {@link DynamoDbKvStore}. */
export interface DynamoDbKvStoreOptions {
  /**
   * Prepended to every kv table name to form the DynamoDB table name (`sluice-gharchive-` +
   * `jobs`); see `AwsBackendConfig.tablePrefix`. The whole name must follow DynamoDB's naming
   * rules: 3..255 characters of `a-z A-Z 0-9 _ . -`
   * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
   */
  readonly tablePrefix: string;
  /** Client for DynamoDB Streams; needed only by {@link KvTable.readChanges}. */
  readonly streamsClient?: DynamoDBStreamsClient;
  /**
   * Create missing tables (on-demand capacity, `PAY_PER_REQUEST`) and enable missing streams
   * (`UpdateTable`), waiting until `ACTIVE`: for tests against emulators and `sluice` dev use.
   * Default false: deployed tables come from the CDK stack, and a missing one is an error.
   */
  readonly createTables?: boolean;
}

/**
 * The {@link KvStore} on Amazon DynamoDB, one DynamoDB table per kv table, named
 * `<tablePrefix><name>`; change streams through DynamoDB Streams.
 *
 * - Items are stored as DynamoDB attribute values with JSON semantics ({@link marshallItem}):
 *   numbers `N`, strings `S` (empty strings allowed outside keys), booleans `BOOL`, `null` `NULL`,
 *   arrays `L`, objects `M` with their keys sorted, so that equal JSON objects are equal maps
 *   whatever their key order (dynalite compares maps in stored order).
 * - Reads (`GetItem`, `Query`, `Scan`) are strongly consistent (`ConsistentRead: true`), so a
 *   read after a write sees it, as locally (bookmarks and leases rely on it).
 * - A {@link Condition} becomes a `ConditionExpression` with `ExpressionAttributeNames` and
 *   `ExpressionAttributeValues` placeholders ({@link compileCondition}); DynamoDB evaluates it
 *   atomically with the write, so `capabilities.conditionalWrites` is true. A
 *   `ConditionalCheckFailedException` becomes a {@link ConditionFailedError} naming table and key.
 * - `query`/`scan` cursors are the base64url of the JSON of DynamoDB's `LastEvaluatedKey`.
 *
 * Errors: `ResourceNotFoundException` -> {@link NotFoundError}; throttling and 5xx (after the
 * SDK's own retries) -> {@link SluiceError} with `retryable: true` and code `dynamodb_unavailable`;
 * other service errors (e.g. `ValidationException` for an item over 400 KB) -> {@link SluiceError}
 * with code `dynamodb_request_failed`. Each message names the DynamoDB table and kv table.
 */
export class DynamoDbKvStore implements KvStore {
  readonly capabilities: KvStoreCapabilities = { conditionalWrites: true };
  private readonly tables = new Map<string, DynamoDbKvTable>();
  private readonly tablePrefix: string;
  private readonly streamsClient: DynamoDBStreamsClient | undefined;
  private readonly createTables: boolean;

  /**
   * @param client a DynamoDB client (region and credentials from the SDK's default chain; an
   *   emulator endpoint in tests, see `clientOptions`).
   */
  constructor(
    private readonly client: DynamoDBClient,
    options: DynamoDbKvStoreOptions,
  ) {
    this.tablePrefix = options.tablePrefix;
    this.streamsClient = options.streamsClient;
    this.createTables = options.createTables === true;
  }

  /**
   * Opens kv table `name`: `DescribeTable` of `<tablePrefix><name>`, then checks that its key
   * schema (`KeySchema` + `AttributeDefinitions`) is `keySchema`.
   *
   * A missing table is created when the store was built with `createTables` (`CreateTable`,
   * `BillingMode: PAY_PER_REQUEST`, with `StreamSpecification` `NEW_AND_OLD_IMAGES` when `stream`
   * is set), waiting until it is `ACTIVE`. With `stream: true`, a table without a stream gets one
   * through `UpdateTable` under `createTables`; otherwise that is an error.
   *
   * @throws {NotFoundError} when the table does not exist and `createTables` is off (it is
   *   deployed by the pipeline's CDK stack).
   * @throws {Error} when the key schema differs (the message gives both), when `stream` is asked
   *   of a table without a `NEW_AND_OLD_IMAGES` stream, or when name or schema are malformed.
   * @throws {SluiceError} on DynamoDB errors (see the class doc).
   */
  async table(name: string, keySchema: KeySchema, options: { stream?: boolean } = {}): Promise<KvTable> {
    if (typeof name !== 'string' || name.length === 0) {
      throw new Error('kv table name must be a non-empty string');
    }
    const schema = canonicalSchema(name, keySchema);
    const tableName = `${this.tablePrefix}${name}`;
    if (!/^[a-zA-Z0-9_.-]{3,255}$/.test(tableName)) {
      throw new Error(
        `kv table "${name}": DynamoDB table name "${tableName}" must be 3 to 255 characters of a-z, A-Z, 0-9, "_", "." and "-"`,
      );
    }
    const stream = options.stream === true;
    const cached = this.tables.get(name);
    if (
      cached !== undefined &&
      sameSchema(cached.keySchema, schema) &&
      (!stream || cached.streamArn !== undefined)
    ) {
      return cached;
    }
    const where = `DynamoDB table "${tableName}" (kv table "${name}")`;

    let description = await this.describe(tableName, where);
    if (description === undefined) {
      if (!this.createTables) {
        throw new NotFoundError(
          `${where} does not exist: deployed tables come from the pipeline's CDK stack (sluice deploy); ` +
            `check the region and the table prefix "${this.tablePrefix}"`,
        );
      }
      description = await this.create(tableName, schema, stream, where);
    }
    if (description.TableStatus === 'CREATING') description = await this.waitActive(tableName, where, false);

    const actual = schemaOf(description);
    if (actual === undefined || !sameSchema(actual, schema)) {
      throw new Error(
        `${where} has key schema ${actual ? describeSchema(actual) : describeRaw(description)}, ` +
          `but was opened with ${describeSchema(schema)}`,
      );
    }

    if (stream && !hasStream(description)) {
      if (description.StreamSpecification?.StreamEnabled === true) {
        throw new Error(
          `${where} has a stream of view type ${description.StreamSpecification.StreamViewType}, ` +
            'but sluice needs NEW_AND_OLD_IMAGES (change it in the CDK stack: stream: StreamViewType.NEW_AND_OLD_IMAGES)',
        );
      }
      if (!this.createTables) {
        throw new Error(
          `${where} has no stream, but was opened with { stream: true }: deploy it with ` +
            'StreamSpecification NEW_AND_OLD_IMAGES (CDK: stream: StreamViewType.NEW_AND_OLD_IMAGES)',
        );
      }
      description = await this.enableStream(tableName, where);
    }

    const table = new DynamoDbKvTable(
      this.client,
      this.streamsClient,
      name,
      tableName,
      schema,
      hasStream(description) ? description.LatestStreamArn : undefined,
    );
    this.tables.set(name, table);
    return table;
  }

  /** `DescribeTable`; `undefined` when the table does not exist. */
  private async describe(tableName: string, where: string): Promise<TableDescription | undefined> {
    try {
      const output = await this.client.send(new DescribeTableCommand({ TableName: tableName }));
      return output.Table;
    } catch (error) {
      if (errorName(error) === 'ResourceNotFoundException') return undefined;
      throw dynamoError(error, `DescribeTable of ${where}`);
    }
  }

  private async create(
    tableName: string,
    schema: KeySchema,
    stream: boolean,
    where: string,
  ): Promise<TableDescription> {
    const attributes = [schema.hashKey, ...(schema.rangeKey ? [schema.rangeKey] : [])];
    try {
      await this.client.send(
        new CreateTableCommand({
          TableName: tableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: attributes.map((a) => ({ AttributeName: a.name, AttributeType: a.type })),
          KeySchema: [
            { AttributeName: schema.hashKey.name, KeyType: 'HASH' },
            ...(schema.rangeKey ? [{ AttributeName: schema.rangeKey.name, KeyType: 'RANGE' as const }] : []),
          ],
          ...(stream
            ? { StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' as const } }
            : {}),
        }),
      );
    } catch (error) {
      // Another writer created it first: use theirs (its schema is checked by the caller).
      if (errorName(error) !== 'ResourceInUseException') throw dynamoError(error, `CreateTable of ${where}`);
    }
    return this.waitActive(tableName, where, false);
  }

  private async enableStream(tableName: string, where: string): Promise<TableDescription> {
    try {
      await this.client.send(
        new UpdateTableCommand({
          TableName: tableName,
          StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
        }),
      );
    } catch (error) {
      throw new SluiceError(
        `${where} has no stream, and UpdateTable could not enable one (NEW_AND_OLD_IMAGES); ` +
          `dynalite has no DynamoDB Streams: ${errorMessage(error)}`,
        { code: 'dynamodb_request_failed', cause: error },
      );
    }
    const description = await this.waitActive(tableName, where, true);
    if (!hasStream(description)) {
      throw new Error(`${where}: UpdateTable succeeded, but the table shows no NEW_AND_OLD_IMAGES stream`);
    }
    return description;
  }

  /**
   * Polls `DescribeTable` (25 ms, doubling to 1 s) until `ACTIVE` and, with `stream`, a
   * `LatestStreamArn`. @throws {SluiceError} `table_not_ready` (retryable) after {@link TABLE_ACTIVE_TIMEOUT_MS}.
   */
  private async waitActive(tableName: string, where: string, stream: boolean): Promise<TableDescription> {
    const started = Date.now();
    for (let delay = 25; ; delay = Math.min(delay * 2, 1000)) {
      const description = await this.describe(tableName, where);
      if (description?.TableStatus === 'ACTIVE' && (!stream || description.LatestStreamArn !== undefined)) {
        return description;
      }
      if (Date.now() - started > TABLE_ACTIVE_TIMEOUT_MS) {
        throw new SluiceError(
          `${where} is still ${description?.TableStatus ?? 'missing'} after ${TABLE_ACTIVE_TIMEOUT_MS} ms`,
          { code: 'table_not_ready', retryable: true },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** One table of {@link DynamoDbKvStore}; see {@link KvTable}. */
class DynamoDbKvTable implements KvTable {
  private readonly where: string;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly streamsClient: DynamoDBStreamsClient | undefined,
    readonly name: string,
    /** The DynamoDB table name (`<tablePrefix><name>`). */
    readonly tableName: string,
    readonly keySchema: KeySchema,
    /** `LatestStreamArn` when the table has a `NEW_AND_OLD_IMAGES` stream. */
    public streamArn: string | undefined,
  ) {
    this.where = `DynamoDB table "${tableName}" (kv table "${name}")`;
  }

  async get(key: Item): Promise<Item | undefined> {
    const dynamoKey = this.keyOf(key, 'key');
    try {
      const output = await this.client.send(
        new GetItemCommand({ TableName: this.tableName, Key: dynamoKey, ConsistentRead: true }),
      );
      return output.Item === undefined ? undefined : unmarshallItem(output.Item);
    } catch (error) {
      throw dynamoError(error, `GetItem on ${this.where} for key ${describeKey(dynamoKey)}`);
    }
  }

  async put(item: Item, options: { condition?: Condition } = {}): Promise<void> {
    const key = this.keyOf(item, 'item');
    const marshalled = marshallItem(item);
    const condition = this.conditionInput('put', key, options.condition);
    try {
      await this.client.send(
        new PutItemCommand({ TableName: this.tableName, Item: marshalled, ...condition }),
      );
    } catch (error) {
      throw this.writeError(error, 'put', key, condition.ConditionExpression);
    }
  }

  async delete(key: Item, options: { condition?: Condition } = {}): Promise<void> {
    const dynamoKey = this.keyOf(key, 'key');
    const condition = this.conditionInput('delete', dynamoKey, options.condition);
    try {
      await this.client.send(
        new DeleteItemCommand({ TableName: this.tableName, Key: dynamoKey, ...condition }),
      );
    } catch (error) {
      throw this.writeError(error, 'delete', dynamoKey, condition.ConditionExpression);
    }
  }

  async query(
    hashValue: KeyValue,
    options: PageOptions & { range?: RangeCondition; descending?: boolean } = {},
  ): Promise<Page> {
    const hash = this.keyValue(this.keySchema.hashKey, hashValue, 'query');
    const limit = pageLimit(this.name, options.limit);
    const names: Record<string, string> = { '#h': this.keySchema.hashKey.name };
    const values: Record<string, AttributeValue> = { ':h': keyAttributeValue(hash) };
    let expression = '#h = :h';
    if (options.range !== undefined) {
      const range = this.rangeExpression(options.range, values);
      if (range === false) return { items: [] };
      if (range !== true) {
        names['#r'] = this.keySchema.rangeKey!.name;
        expression += ` AND ${range}`;
      }
    }
    const start = options.cursor === undefined ? undefined : this.decodeCursor(options.cursor, 'query');
    try {
      const output = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: expression,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ConsistentRead: true,
          Limit: limit,
          ...(options.descending ? { ScanIndexForward: false } : {}),
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      return this.page(output.Items, output.LastEvaluatedKey);
    } catch (error) {
      throw dynamoError(
        error,
        `Query on ${this.where} for ${this.keySchema.hashKey.name} = ${JSON.stringify(hash)}`,
      );
    }
  }

  async scan(options: PageOptions = {}): Promise<Page> {
    const limit = pageLimit(this.name, options.limit);
    const start = options.cursor === undefined ? undefined : this.decodeCursor(options.cursor, 'scan');
    try {
      const output = await this.client.send(
        new ScanCommand({
          TableName: this.tableName,
          ConsistentRead: true,
          Limit: limit,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      return this.page(output.Items, output.LastEvaluatedKey);
    } catch (error) {
      throw dynamoError(error, `Scan of ${this.where}`);
    }
  }

  /**
   * Reads the table's DynamoDB stream (https://docs.aws.amazon.com/amazondynamodbstreams/latest/APIReference/):
   * `DescribeStream` (all pages) lists the shards; each shard that may hold records after the
   * position gets a `GetShardIterator` (`TRIM_HORIZON`, or `AFTER_SEQUENCE_NUMBER` for the shard
   * whose `SequenceNumberRange` starts at or before it) and `GetRecords` calls until `limit`
   * records, the end of a closed shard, or {@link EMPTY_READS_AT_TIP} empty answers of an open
   * shard. Records after the position from all shards are merged by sequence number
   * ({@link compareSequence}) and the first `limit` returned; `next` is `AFTER_SEQUENCE_NUMBER` of
   * the last one, or `position` when there is none.
   *
   * `LATEST` is resolved to the newest sequence number now in the stream: open shards are read
   * from `TRIM_HORIZON` to their tip (a stream keeps 24 hours, and a shard lives about 4 hours, so
   * this costs up to one `GetRecords` per 1,000 records of the open shards); closed shards count
   * with their `EndingSequenceNumber`; an empty open shard with its `StartingSequenceNumber` - 1.
   *
   * Limits, stated honestly: one sequence number orders records across shards only when sequence
   * numbers grow across shards in commit order. That holds along a shard's lineage (parent, then
   * child), i.e. for a table whose stream has one open shard at a time (small tables: bookmarks,
   * leases, checkpoints). AWS orders records only per item across parallel shards; for large,
   * multi-partition tables use the Lambda event source mapping (src/runtime/aws) instead.
   *
   * @throws {Error} when the table has no stream or the store has no `streamsClient`.
   * @throws {SluiceError} `stream_trimmed` when the position is older than the stream's 24-hour
   *   retention (`TrimmedDataAccessException`); other errors as in the class doc.
   */
  async readChanges(
    position: StreamPosition,
    options: { limit?: number } = {},
  ): Promise<{ records: ChangeRecord[]; next: StreamPosition }> {
    const limit = pageLimit(this.name, options.limit);
    const after = this.parsePosition(position);
    const streamArn = await this.requireStream();
    const shards = await this.listShards(streamArn);
    if (position.type === 'LATEST') {
      return {
        records: [],
        next: { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: await this.newestSequence(streamArn, shards) },
      };
    }
    const collected: ChangeRecord[] = [];
    for (const shard of shards) {
      const range = shard.SequenceNumberRange;
      const end = range?.EndingSequenceNumber;
      if (after !== undefined && end !== undefined && compareSequence(end, after) <= 0) continue;
      const startsBefore =
        after !== undefined &&
        range?.StartingSequenceNumber !== undefined &&
        compareSequence(range.StartingSequenceNumber, after) <= 0;
      const records = await this.readShard(streamArn, shard, startsBefore ? after : undefined, limit);
      for (const record of records) {
        if (after === undefined || compareSequence(record.sequenceNumber, after) > 0) collected.push(record);
      }
    }
    collected.sort((a, b) => compareSequence(a.sequenceNumber, b.sequenceNumber));
    const records = collected.slice(0, limit);
    const last = records.at(-1);
    return {
      records,
      next: last ? { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last.sequenceNumber } : position,
    };
  }

  /** The sequence number after which nothing is in the stream now (see {@link readChanges}). */
  private async newestSequence(streamArn: string, shards: Shard[]): Promise<string> {
    let newest = '0';
    const raise = (candidate: string) => {
      if (compareSequence(candidate, newest) > 0) newest = candidate;
    };
    for (const shard of shards) {
      const range = shard.SequenceNumberRange;
      if (range?.EndingSequenceNumber !== undefined) {
        raise(range.EndingSequenceNumber);
        continue;
      }
      const records = await this.readShard(streamArn, shard, undefined, Number.POSITIVE_INFINITY);
      const last = records.at(-1);
      if (last) raise(last.sequenceNumber);
      else if (range?.StartingSequenceNumber !== undefined) {
        const before = BigInt(range.StartingSequenceNumber) - 1n;
        if (before >= 0n) raise(before.toString());
      }
    }
    return newest;
  }

  /** Records of one shard, from `TRIM_HORIZON` or after `after`, oldest first, at most `limit`. */
  private async readShard(
    streamArn: string,
    shard: Shard,
    after: string | undefined,
    limit: number,
  ): Promise<ChangeRecord[]> {
    const client = this.streamsClient!;
    const shardId = shard.ShardId!;
    const closed = shard.SequenceNumberRange?.EndingSequenceNumber !== undefined;
    const iteratorOf = async (type: ShardIteratorType, sequenceNumber?: string) => {
      const output = await client.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shardId,
          ShardIteratorType: type,
          ...(sequenceNumber === undefined ? {} : { SequenceNumber: sequenceNumber }),
        }),
      );
      return output.ShardIterator;
    };
    let iterator: string | undefined;
    try {
      if (after === undefined) iterator = await iteratorOf('TRIM_HORIZON');
      else {
        try {
          iterator = await iteratorOf('AFTER_SEQUENCE_NUMBER', after);
        } catch (error) {
          // A number from another shard is not valid here: read the shard from its start instead
          // (the caller drops records at or before `after`).
          if (errorName(error) !== 'ValidationException') throw error;
          iterator = await iteratorOf('TRIM_HORIZON');
        }
      }
      const records: ChangeRecord[] = [];
      let empty = 0;
      while (iterator !== undefined && records.length < limit) {
        const output = await client.send(
          new GetRecordsCommand({
            ShardIterator: iterator,
            Limit: Math.min(MAX_GET_RECORDS, limit - records.length),
          }),
        );
        const batch = output.Records ?? [];
        records.push(...batch.map((record) => this.changeRecord(record)));
        iterator = output.NextShardIterator;
        if (batch.length > 0) empty = 0;
        else if (!closed && ++empty >= EMPTY_READS_AT_TIP) break;
      }
      return records;
    } catch (error) {
      if (errorName(error) === 'TrimmedDataAccessException') {
        throw new SluiceError(
          `kv table "${this.name}": changes after sequence number ${after ?? '(trim horizon)'} in shard ${shardId} ` +
            `of ${this.where} are older than the stream's 24-hour retention and were deleted; ` +
            'read again from TRIM_HORIZON or LATEST (DynamoDB TrimmedDataAccessException)',
          { code: 'stream_trimmed', cause: error },
        );
      }
      throw dynamoError(error, `reading shard ${shardId} of the stream of ${this.where}`);
    }
  }

  /** Every shard of the stream (`DescribeStream`, paged by `ExclusiveStartShardId`), parents first. */
  private async listShards(streamArn: string): Promise<Shard[]> {
    const shards: Shard[] = [];
    let start: string | undefined;
    try {
      do {
        const output = await this.streamsClient!.send(
          new DescribeStreamCommand({
            StreamArn: streamArn,
            ...(start === undefined ? {} : { ExclusiveStartShardId: start }),
          }),
        );
        shards.push(...(output.StreamDescription?.Shards ?? []));
        start = output.StreamDescription?.LastEvaluatedShardId;
      } while (start !== undefined);
    } catch (error) {
      throw dynamoError(error, `DescribeStream of the stream of ${this.where}`);
    }
    return lineageOrder(shards);
  }

  /** The stream ARN, describing the table again when none is known (a stream enabled since). */
  private async requireStream(): Promise<string> {
    if (this.streamsClient === undefined) {
      throw new Error(
        `kv table "${this.name}": reading its change stream needs a DynamoDBStreamsClient (DynamoDbKvStore option streamsClient)`,
      );
    }
    if (this.streamArn === undefined) {
      try {
        const output = await this.client.send(new DescribeTableCommand({ TableName: this.tableName }));
        if (output.Table && hasStream(output.Table)) this.streamArn = output.Table.LatestStreamArn;
      } catch (error) {
        throw dynamoError(error, `DescribeTable of ${this.where}`);
      }
    }
    if (this.streamArn === undefined) {
      throw new Error(
        `${this.where} has no change stream: open it with { stream: true } on a table deployed with ` +
          'StreamSpecification NEW_AND_OLD_IMAGES',
      );
    }
    return this.streamArn;
  }

  /** Validates a position; the sequence number it continues after, if any. @throws {Error} */
  private parsePosition(position: StreamPosition): string | undefined {
    switch (position?.type) {
      case 'TRIM_HORIZON':
      case 'LATEST':
        return undefined;
      case 'AFTER_SEQUENCE_NUMBER':
        if (typeof position.sequenceNumber === 'string' && /^[0-9]+$/.test(position.sequenceNumber)) {
          return position.sequenceNumber;
        }
        throw new Error(
          `kv table "${this.name}": invalid sequence number ${JSON.stringify(position.sequenceNumber) ?? 'undefined'}`,
        );
      default:
        throw new Error(
          `kv table "${this.name}": unknown stream position ${JSON.stringify(position) ?? String(position)}`,
        );
    }
  }

  /** A DynamoDB Streams record as a {@link ChangeRecord}. @throws {Error} when fields are missing. */
  private changeRecord(record: StreamRecord): ChangeRecord {
    const data = record.dynamodb;
    const sequenceNumber = data?.SequenceNumber;
    const eventName = record.eventName;
    const at = data?.ApproximateCreationDateTime;
    if (data === undefined || sequenceNumber === undefined || eventName === undefined || at === undefined) {
      throw new Error(
        `stream of ${this.where}: record ${record.eventID ?? '?'} lacks dynamodb.SequenceNumber, eventName or ApproximateCreationDateTime`,
      );
    }
    const time = at instanceof Date ? at : new Date(Number(at) * 1000);
    return {
      sequenceNumber,
      eventName,
      keys: unmarshallItem((data.Keys ?? {}) as Record<string, AttributeValue>),
      ...(data.OldImage ? { oldImage: unmarshallItem(data.OldImage as Record<string, AttributeValue>) } : {}),
      ...(data.NewImage ? { newImage: unmarshallItem(data.NewImage as Record<string, AttributeValue>) } : {}),
      approximateCreationDateTime: time.toISOString(),
    };
  }

  private page(
    items: Record<string, AttributeValue>[] | undefined,
    last: Record<string, AttributeValue> | undefined,
  ): Page {
    const page = (items ?? []).map(unmarshallItem);
    return last === undefined
      ? { items: page }
      : { items: page, cursor: Buffer.from(JSON.stringify(last), 'utf8').toString('base64url') };
  }

  /** A cursor back to an `ExclusiveStartKey`. @throws {Error} when it is not one of this table's keys. */
  private decodeCursor(cursor: string, kind: 'query' | 'scan'): Record<string, AttributeValue> {
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(String(cursor), 'base64url').toString('utf8'));
    } catch {
      decoded = undefined;
    }
    const attributes = [
      this.keySchema.hashKey,
      ...(this.keySchema.rangeKey ? [this.keySchema.rangeKey] : []),
    ];
    const valid =
      typeof decoded === 'object' &&
      decoded !== null &&
      !Array.isArray(decoded) &&
      Object.keys(decoded).length === attributes.length &&
      attributes.every((attribute) => {
        const value = (decoded as Record<string, unknown>)[attribute.name];
        if (typeof value !== 'object' || value === null || Object.keys(value).length !== 1) return false;
        const scalar = (value as Record<string, unknown>)[attribute.type];
        return typeof scalar === 'string' && scalar.length > 0;
      });
    if (!valid) throw new Error(`kv table "${this.name}": invalid ${kind} cursor "${cursor}"`);
    return decoded as Record<string, AttributeValue>;
  }

  /**
   * The `ConditionExpression` part of a write request for `condition` (none without one).
   * @throws {ConditionFailedError} when the condition can never hold (e.g. `lt` with a boolean).
   */
  private conditionInput(
    operation: 'put' | 'delete',
    key: Record<string, AttributeValue>,
    condition: Condition | undefined,
  ): {
    ConditionExpression?: string;
    ExpressionAttributeNames?: Record<string, string>;
    ExpressionAttributeValues?: Record<string, AttributeValue>;
  } {
    if (condition === undefined) return {};
    const compiled = compileCondition(condition, this.keySchema.hashKey.name);
    if (compiled.expression === true) return {};
    if (compiled.expression === false) {
      throw new ConditionFailedError(
        `conditional ${operation} on ${this.where} failed for key ${describeKey(key)}: ` +
          'the condition can never hold (an order comparison with a value that is not a number or string)',
      );
    }
    return {
      ConditionExpression: compiled.expression,
      ExpressionAttributeNames: compiled.names,
      ...(Object.keys(compiled.values).length > 0 ? { ExpressionAttributeValues: compiled.values } : {}),
    };
  }

  private writeError(
    error: unknown,
    operation: 'put' | 'delete',
    key: Record<string, AttributeValue>,
    expression: string | undefined,
  ): unknown {
    if (errorName(error) === 'ConditionalCheckFailedException') {
      return new ConditionFailedError(
        `conditional ${operation} on ${this.where} failed for key ${describeKey(key)}: ` +
          `the stored item (or its absence) does not satisfy ${expression ?? 'the condition'}`,
        { cause: error },
      );
    }
    const verb = operation === 'put' ? 'PutItem' : 'DeleteItem';
    return dynamoError(error, `${verb} on ${this.where} for key ${describeKey(key)}`);
  }

  /**
   * The range part of a `KeyConditionExpression` (values added to `values`, name `#r`), `true`
   * when it selects everything (`begins_with ''`), `false` when nothing (`between` with low > high,
   * which DynamoDB rejects). @throws {Error} on a table without range key or a value of the wrong type.
   */
  private rangeExpression(
    condition: RangeCondition,
    values: Record<string, AttributeValue>,
  ): string | boolean {
    const rangeKey = this.keySchema.rangeKey;
    if (!rangeKey)
      throw new Error(`kv table "${this.name}" has no range key; a range condition cannot apply`);
    const value = (v: KeyValue) => this.keyValue(rangeKey, v, 'range condition');
    switch (condition.op) {
      case 'eq':
      case 'lt':
      case 'le':
      case 'gt':
      case 'ge': {
        values[':r'] = keyAttributeValue(value(condition.value));
        return `#r ${COMPARATORS[condition.op]} :r`;
      }
      case 'between': {
        const low = value(condition.low);
        const high = value(condition.high);
        if (compareKeys(low, high) > 0) return false;
        values[':lo'] = keyAttributeValue(low);
        values[':hi'] = keyAttributeValue(high);
        return '#r BETWEEN :lo AND :hi';
      }
      case 'begins_with': {
        if (rangeKey.type !== 'S') {
          throw new Error(
            `kv table "${this.name}": begins_with needs a string (S) range key; "${rangeKey.name}" is N`,
          );
        }
        if (typeof condition.prefix !== 'string') {
          throw new Error(`kv table "${this.name}": begins_with prefix must be a string`);
        }
        if (condition.prefix === '') return true;
        values[':p'] = { S: condition.prefix };
        return 'begins_with(#r, :p)';
      }
      default:
        throw new Error(
          `kv table "${this.name}": unknown range condition ${JSON.stringify((condition as { op: unknown }).op)}`,
        );
    }
  }

  /** The DynamoDB `Key` of an item or key. @throws {Error} naming table and attribute. */
  private keyOf(item: Item, what: 'item' | 'key'): Record<string, AttributeValue> {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new Error(`kv table "${this.name}": ${what} must be a JSON object`);
    }
    const key: Record<string, AttributeValue> = {};
    for (const attribute of [
      this.keySchema.hashKey,
      ...(this.keySchema.rangeKey ? [this.keySchema.rangeKey] : []),
    ]) {
      if (!Object.hasOwn(item, attribute.name)) {
        throw new Error(`kv table "${this.name}": ${what} lacks key attribute "${attribute.name}"`);
      }
      key[attribute.name] = keyAttributeValue(this.keyValue(attribute, item[attribute.name], what));
    }
    return key;
  }

  /** Checks a key value against its type (`S` non-empty string, `N` finite number). @throws {Error} */
  private keyValue(attribute: KeyAttribute, value: JsonValue | undefined, what: string): KeyValue {
    if (attribute.type === 'S') {
      if (typeof value === 'string' && value.length > 0) return value;
    } else if (typeof value === 'number' && Number.isFinite(value)) {
      return value === 0 ? 0 : value;
    }
    const expected = attribute.type === 'S' ? 'a non-empty string (S)' : 'a finite number (N)';
    throw new Error(
      `kv table "${this.name}": key attribute "${attribute.name}" in ${what} must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
}

const COMPARATORS = { eq: '=', ne: '<>', lt: '<', le: '<=', gt: '>', ge: '>=' } as const;

/** The result of {@link compileCondition}. */
export interface CompiledCondition {
  /** The `ConditionExpression`, or `true`/`false` when the condition is constant. */
  readonly expression: string | boolean;
  /** `ExpressionAttributeNames`: `#n0`, `#n1`, ... -> attribute names. */
  readonly names: Record<string, string>;
  /** `ExpressionAttributeValues`: `:v0`, `:v1`, ... -> marshalled values. */
  readonly values: Record<string, AttributeValue>;
}

/**
 * Compiles a {@link Condition} into a DynamoDB `ConditionExpression`
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.OperatorsAndFunctions.html):
 * every attribute name becomes an `ExpressionAttributeNames` placeholder and every value an
 * `ExpressionAttributeValues` placeholder, so reserved words and odd names are safe.
 *
 * - `exists`/`not_exists` without attribute test the item through its hash key
 *   (`attribute_exists(#n0)`), with one the attribute (`NULL` values exist);
 * - `eq` -> `=`, `ne` -> `<>` (true when the attribute is missing, as the port says); for a list
 *   or map value (up to {@link STRUCTURAL_EQUALITY_MAX_NODES} nodes), `eq` compares each element
 *   by path (`attribute_type(#a, :L) AND size(#a) = :n AND #a[0] = :x ...`, map keys as name
 *   placeholders) and `ne` is `NOT (...)` of that;
 * - `lt`/`le`/`gt`/`ge` -> `<`, `<=`, `>`, `>=` for a number or string value; with any other value
 *   the port defines them as false, and DynamoDB would reject the operand type, so they compile to
 *   the constant `false`;
 * - `and`/`or`/`not` -> `AND`/`OR`/`NOT` with parentheses; constants are folded away.
 *
 * @param hashKey the table's hash key attribute name.
 * @throws {Error} on a malformed condition (missing attribute or value, empty `and`/`or`, unknown op).
 */
export function compileCondition(condition: Condition, hashKey: string): CompiledCondition {
  const names: Record<string, string> = {};
  const values: Record<string, AttributeValue> = {};
  const nameIds = new Map<string, string>();
  const name = (attribute: string): string => {
    let id = nameIds.get(attribute);
    if (id === undefined) {
      id = `#n${nameIds.size}`;
      nameIds.set(attribute, id);
      names[id] = attribute;
    }
    return id;
  };
  const value = (v: JsonValue): string => {
    const id = `:v${Object.keys(values).length}`;
    values[id] = marshallValue(normalizeJson(v));
    return id;
  };
  // Deep equality of a list or map as comparisons of its scalars: exact, and independent of how
  // a backend compares whole maps (dynalite compares L and M values by reference: never equal).
  const equality = (path: string, v: JsonValue): string => {
    if (v === null || typeof v !== 'object') return `${path} = ${value(v)}`;
    const entries: [string, JsonValue][] = Array.isArray(v)
      ? v.map((element, i) => [`${path}[${i}]`, element])
      : Object.keys(v)
          .sort()
          .map((key) => [`${path}.${name(key)}`, v[key] as JsonValue]);
    return [
      `attribute_type(${path}, ${value(Array.isArray(v) ? 'L' : 'M')})`,
      `size(${path}) = ${value(entries.length)}`,
      ...entries.map(([p, element]) => equality(p, element)),
    ].join(' AND ');
  };
  const attributeOf = (c: { op: string; attribute?: unknown }, required: boolean): string | undefined => {
    if (c.attribute === undefined && !required) return undefined;
    if (typeof c.attribute !== 'string' || c.attribute.length === 0) {
      throw new Error(`condition ${c.op}: attribute must be a non-empty string`);
    }
    return c.attribute;
  };
  const compile = (c: Condition): string | boolean => {
    switch (c?.op) {
      case 'exists':
      case 'not_exists': {
        const attribute = attributeOf(c, false) ?? hashKey;
        return `${c.op === 'exists' ? 'attribute_exists' : 'attribute_not_exists'}(${name(attribute)})`;
      }
      case 'eq':
      case 'ne':
      case 'lt':
      case 'le':
      case 'gt':
      case 'ge': {
        const attribute = attributeOf(c, true)!;
        if (c.value === undefined) throw new Error(`condition ${c.op}: value is missing`);
        const normalized = normalizeJson(c.value);
        if (c.op === 'eq' || c.op === 'ne') {
          if (typeof normalized === 'object' && normalized !== null && structural(normalized)) {
            const equal = equality(name(attribute), normalized);
            return c.op === 'eq' ? equal : `NOT (${equal})`;
          }
        } else if (typeof normalized !== 'number' && typeof normalized !== 'string') {
          return false;
        }
        return `${name(attribute)} ${COMPARATORS[c.op]} ${value(normalized)}`;
      }
      case 'and':
      case 'or': {
        if (!Array.isArray(c.conditions) || c.conditions.length === 0) {
          throw new Error(`condition ${c.op}: needs at least one condition`);
        }
        const parts = c.conditions.map(compile);
        const absorbing = c.op === 'or'; // true absorbs OR, false absorbs AND
        if (parts.includes(absorbing)) return absorbing;
        const rest = parts.filter((p): p is string => typeof p === 'string');
        if (rest.length === 0) return !absorbing;
        if (rest.length === 1) return rest[0]!;
        return rest.map((p) => `(${p})`).join(c.op === 'and' ? ' AND ' : ' OR ');
      }
      case 'not': {
        const inner = compile(c.condition);
        return typeof inner === 'boolean' ? !inner : `NOT (${inner})`;
      }
      default:
        throw new Error(`unknown condition op ${JSON.stringify((c as { op?: unknown } | undefined)?.op)}`);
    }
  };
  const expression = compile(condition);
  return typeof expression === 'boolean'
    ? { expression, names: {}, values: {} }
    : { expression, names, values };
}

/**
 * Most scalars, lists and maps in a value that {@link compileCondition} compares one by one: each
 * costs about 30 characters of the 4 KB an expression may have
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-expression-parameters).
 */
export const STRUCTURAL_EQUALITY_MAX_NODES = 64;

/**
 * Whether `eq`/`ne` on this list or map compile to a comparison of each element (small values
 * whose map keys are non-empty), rather than one `=` of the whole value, which DynamoDB supports
 * ("EQ is supported for all data types, including lists and maps", API_Condition) but dynalite
 * cannot evaluate.
 */
function structural(value: JsonValue): boolean {
  let nodes = 0;
  const visit = (v: JsonValue): boolean => {
    if (++nodes > STRUCTURAL_EQUALITY_MAX_NODES) return false;
    if (v === null || typeof v !== 'object') return true;
    if (Array.isArray(v)) return v.every(visit);
    return Object.entries(v).every(([key, element]) => key.length > 0 && visit(element));
  };
  return visit(value);
}

/** A JSON value after a `JSON.stringify`/`JSON.parse` round trip (undefined dropped, NaN -> null, toJSON applied). */
function normalizeJson(value: JsonValue): JsonValue {
  const text = JSON.stringify(value);
  return text === undefined ? null : (JSON.parse(text) as JsonValue);
}

/**
 * A JSON value as a DynamoDB `AttributeValue`
 * (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html):
 * `null` -> `NULL`, boolean -> `BOOL`, number -> `N` (its shortest JavaScript decimal, e.g.
 * `1.5`, `1e+21`; DynamoDB accepts magnitudes 1e-130..1e126 and rejects others with a
 * `ValidationException`), string -> `S` (empty allowed outside keys), array -> `L`, object -> `M`
 * with keys sorted (equal objects give equal maps). @throws {Error} on a non-finite number or a
 * value that is not JSON (call with a normalized value; {@link marshallItem} does).
 */
export function marshallValue(value: JsonValue): AttributeValue {
  if (value === null) return { NULL: true };
  switch (typeof value) {
    case 'string':
      return { S: value };
    case 'boolean':
      return { BOOL: value };
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`cannot store the number ${value} in DynamoDB`);
      return { N: String(value) };
    case 'object': {
      if (Array.isArray(value)) return { L: value.map(marshallValue) };
      const map: Record<string, AttributeValue> = {};
      for (const key of Object.keys(value).sort()) map[key] = marshallValue(value[key] as JsonValue);
      return { M: map };
    }
    default:
      throw new Error(`cannot store a ${typeof value} in DynamoDB`);
  }
}

/**
 * An item as DynamoDB attribute values, with JSON semantics: the item is first normalized as
 * `JSON.stringify` would write it (`undefined` attributes dropped, non-finite numbers `null`,
 * `toJSON` applied, e.g. Dates become ISO strings), exactly what the local backend stores.
 */
export function marshallItem(item: Item): Record<string, AttributeValue> {
  const normalized = normalizeJson(item);
  const marshalled = marshallValue(normalized);
  if (marshalled.M === undefined) throw new Error('a kv item must be a JSON object');
  return marshalled.M;
}

/**
 * An `AttributeValue` as JSON: `N` -> number (`Number()`, exact within 2^53), `S`, `BOOL`,
 * `NULL` -> null, `L`, `M`; for items written by other tools: `SS`/`NS` -> arrays of strings /
 * numbers, `B` -> base64 string, `BS` -> array of base64 strings.
 * @throws {Error} on an attribute value of no known type.
 */
export function unmarshallValue(value: AttributeValue): JsonValue {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return Number(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.NULL !== undefined) return null;
  if (value.L !== undefined) return value.L.map(unmarshallValue);
  if (value.M !== undefined) return unmarshallItem(value.M);
  if (value.SS !== undefined) return [...value.SS];
  if (value.NS !== undefined) return value.NS.map(Number);
  if (value.B !== undefined) return Buffer.from(value.B).toString('base64');
  if (value.BS !== undefined) return value.BS.map((b) => Buffer.from(b).toString('base64'));
  throw new Error(`unknown DynamoDB attribute value ${JSON.stringify(value)}`);
}

/** A DynamoDB item (or key, or stream image) as a JSON object; see {@link unmarshallValue}. */
export function unmarshallItem(item: Record<string, AttributeValue>): Item {
  const out: Item = {};
  for (const [key, value] of Object.entries(item)) out[key] = unmarshallValue(value);
  return out;
}

function keyAttributeValue(value: KeyValue): AttributeValue {
  return typeof value === 'number' ? { N: String(value) } : { S: value };
}

/** `{"id":"x"}` for a DynamoDB key. */
function describeKey(key: Record<string, AttributeValue>): string {
  return JSON.stringify(unmarshallItem(key));
}

/** Orders two key values of the same type: numbers numerically, strings by UTF-8 bytes. */
function compareKeys(a: KeyValue, b: KeyValue): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return Buffer.compare(Buffer.from(String(a), 'utf8'), Buffer.from(String(b), 'utf8'));
}

function pageLimit(table: string, limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new Error(`kv table "${table}": page limit must be a positive integer, got ${limit}`);
  }
  return limit;
}

/** A key schema with only the known fields, validated. @throws {Error} */
function canonicalSchema(table: string, schema: KeySchema): KeySchema {
  const attribute = (role: string, key: KeyAttribute): KeyAttribute => {
    if (!key || typeof key.name !== 'string' || key.name.length === 0) {
      throw new Error(`kv table "${table}": ${role} key needs a non-empty attribute name`);
    }
    if (key.type !== 'S' && key.type !== 'N') {
      throw new Error(
        `kv table "${table}": ${role} key "${key.name}" has type ${String(key.type)}; expected S or N`,
      );
    }
    return { name: key.name, type: key.type };
  };
  const hashKey = attribute('hash', schema?.hashKey);
  if (schema.rangeKey === undefined) return { hashKey };
  const rangeKey = attribute('range', schema.rangeKey);
  if (rangeKey.name === hashKey.name) {
    throw new Error(`kv table "${table}": hash and range key are both "${hashKey.name}"`);
  }
  return { hashKey, rangeKey };
}

/** The table's key schema from `DescribeTable`; `undefined` when it uses a type sluice has not (B). */
function schemaOf(description: TableDescription): KeySchema | undefined {
  const typeOf = (name: string | undefined) =>
    description.AttributeDefinitions?.find((d) => d.AttributeName === name)?.AttributeType;
  const attribute = (keyType: 'HASH' | 'RANGE'): KeyAttribute | undefined | null => {
    const element = description.KeySchema?.find((k) => k.KeyType === keyType);
    if (element === undefined) return undefined;
    const type = typeOf(element.AttributeName);
    return element.AttributeName && (type === 'S' || type === 'N')
      ? { name: element.AttributeName, type }
      : null;
  };
  const hashKey = attribute('HASH');
  const rangeKey = attribute('RANGE');
  if (!hashKey || rangeKey === null) return undefined;
  return rangeKey ? { hashKey, rangeKey } : { hashKey };
}

function sameSchema(a: KeySchema, b: KeySchema): boolean {
  return (
    a.hashKey.name === b.hashKey.name &&
    a.hashKey.type === b.hashKey.type &&
    a.rangeKey?.name === b.rangeKey?.name &&
    a.rangeKey?.type === b.rangeKey?.type
  );
}

function describeSchema(schema: KeySchema): string {
  const hash = `hash ${schema.hashKey.name} (${schema.hashKey.type})`;
  return schema.rangeKey ? `${hash}, range ${schema.rangeKey.name} (${schema.rangeKey.type})` : hash;
}

function describeRaw(description: TableDescription): string {
  return JSON.stringify({
    KeySchema: description.KeySchema,
    AttributeDefinitions: description.AttributeDefinitions,
  });
}

/** Whether the table has an enabled `NEW_AND_OLD_IMAGES` stream with a known ARN. */
function hasStream(
  description: TableDescription,
): description is TableDescription & { LatestStreamArn: string } {
  return (
    description.StreamSpecification?.StreamEnabled === true &&
    description.StreamSpecification.StreamViewType === 'NEW_AND_OLD_IMAGES' &&
    description.LatestStreamArn !== undefined
  );
}

/** Shards with parents before children (DescribeStream lists them in no promised order), then by start. */
function lineageOrder(shards: Shard[]): Shard[] {
  const byId = new Map(shards.map((shard) => [shard.ShardId, shard]));
  const ordered: Shard[] = [];
  const seen = new Set<string | undefined>();
  const visit = (shard: Shard) => {
    if (seen.has(shard.ShardId)) return;
    seen.add(shard.ShardId);
    const parent = shard.ParentShardId === undefined ? undefined : byId.get(shard.ParentShardId);
    if (parent) visit(parent);
    ordered.push(shard);
  };
  const start = (shard: Shard) => shard.SequenceNumberRange?.StartingSequenceNumber ?? '0';
  for (const shard of [...shards].sort((a, b) => compareSequence(start(a), start(b)))) visit(shard);
  return ordered;
}

function errorName(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? (error as { name?: string }).name : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const RETRYABLE = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'LimitExceededException',
  'InternalServerError',
  'ServiceUnavailable',
  'TimeoutError',
]);

/**
 * Maps an AWS SDK error to sluice's errors (see {@link DynamoDbKvStore}); `what` names the
 * operation, DynamoDB table and kv table.
 */
function dynamoError(error: unknown, what: string): unknown {
  if (error instanceof SluiceError) return error;
  const name = errorName(error) ?? 'Error';
  const message = `${what} failed: ${name}: ${errorMessage(error)}`;
  if (name === 'ResourceNotFoundException') {
    return new NotFoundError(`${message} (deployed tables come from the pipeline's CDK stack)`, {
      cause: error,
    });
  }
  const fault = error as { $fault?: string; $retryable?: unknown; code?: string };
  const network =
    typeof fault?.code === 'string' && /^(ECONN|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN)/.test(fault.code);
  if (RETRYABLE.has(name) || network || fault?.$fault === 'server' || fault?.$retryable !== undefined) {
    return new SluiceError(message, { code: 'dynamodb_unavailable', retryable: true, cause: error });
  }
  return new SluiceError(message, { code: 'dynamodb_request_failed', cause: error });
}

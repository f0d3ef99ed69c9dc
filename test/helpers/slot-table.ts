import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type DynaliteServer, startDynalite } from './dynalite.ts';

/** What {@link startSlotTable} returns. */
export interface SlotTable {
  /** The dynalite holding the table (`server.endpoint` for other clients, e.g. `AWS_ENDPOINT_URL_DYNAMODB`). */
  readonly server: DynaliteServer;
  /** A DynamoDB client on `server` (region `us-east-1`, dummy credentials). */
  readonly ddb: DynamoDBClient;
  /** Destroys `ddb`, then stops `server` (even when destroying throws). Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts dynalite ({@link startDynalite}) with one empty concurrency slot table named `table`, as
 * the deployed stack declares it (src/deploy/pipeline-stack.ts `makeSlotsTable`; written, not
 * imported, so the test states the schema independently): hash key `workflow` (S), on-demand
 * billing (CreateTable, https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CreateTable.html).
 * Start it in `beforeAll`, `close()` it in `afterAll`.
 * @throws the CreateTable or dynalite start error (what was started is stopped first).
 */
export async function startSlotTable(table: string): Promise<SlotTable> {
  const server = await startDynalite();
  const ddb = new DynamoDBClient({
    region: 'us-east-1',
    endpoint: server.endpoint,
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      try {
        ddb.destroy();
      } finally {
        await server.stop();
      }
    })();
    return closed;
  };
  try {
    await ddb.send(
      new CreateTableCommand({
        TableName: table,
        KeySchema: [{ AttributeName: 'workflow', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'workflow', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  } catch (error) {
    await close();
    throw error;
  }
  return { server, ddb, close };
}

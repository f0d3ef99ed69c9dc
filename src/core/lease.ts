import type { Clock } from './clock.ts';
import { ConditionFailedError, LeaseHeldError } from './errors.ts';
import type { Condition, KvStore, KvTable } from './ports/kv-table.ts';

/** Who holds a lease. `host` and `pid` let a local backend see that a holder process died. */
export interface LeaseOwner {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
}

/**
 * Says whether a lease holder is still alive: `true`/`false` when the backend can tell (locally:
 * same host and `kill(pid, 0)`), `undefined` when it cannot (then only expiry frees the lease).
 */
export type LivenessProbe = (owner: LeaseOwner) => boolean | undefined;

/** Options of {@link Lease.acquire}. */
export interface LeaseOptions {
  readonly clock: Clock;
  /** Lease duration in ms; renewed every third of it while held (default 60,000). */
  readonly ttlMs?: number;
  readonly isAlive?: LivenessProbe;
  /**
   * How long to keep trying while another holder has it, in ms of the clock (default 0: fail at
   * once, and let the caller, e.g. an ASL `Retry` on `LeaseHeldError`, decide).
   */
  readonly waitMs?: number;
}

/** Name of the key-value table holding leases. */
export const LEASES_TABLE = 'sluice_leases';

/**
 * A lease (a lock with an expiry) on a named resource, e.g. a pipeline, held in the key-value
 * table `sluice_leases` with conditional writes, so it works the same on SQLite and DynamoDB.
 *
 * A holder that crashes stops renewing; its lease expires after `ttlMs`, or at once when the
 * liveness probe reports its process gone. Acquiring never waits: it fails fast.
 */
export class Lease {
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  private constructor(
    private readonly table: KvTable,
    readonly name: string,
    readonly owner: LeaseOwner,
    private readonly clock: Clock,
    private readonly ttlMs: number,
  ) {}

  /**
   * Takes the lease on `name` for `owner`, trying for up to `waitMs`.
   * @throws {LeaseHeldError} naming the current holder when it is alive and unexpired.
   */
  static async acquire(kv: KvStore, name: string, owner: LeaseOwner, options: LeaseOptions): Promise<Lease> {
    const pollMs = 250;
    for (let waited = 0; ; waited += pollMs) {
      try {
        return await Lease.tryAcquire(kv, name, owner, options);
      } catch (error) {
        if (!(error instanceof LeaseHeldError) || waited + pollMs > (options.waitMs ?? 0)) throw error;
        await options.clock.sleep(pollMs);
      }
    }
  }

  private static async tryAcquire(
    kv: KvStore,
    name: string,
    owner: LeaseOwner,
    options: LeaseOptions,
  ): Promise<Lease> {
    const table = await kv.table(LEASES_TABLE, { hashKey: { name: 'name', type: 'S' } });
    const ttlMs = options.ttlMs ?? 60_000;
    const lease = new Lease(table, name, owner, options.clock, ttlMs);
    const now = options.clock.now().getTime();
    try {
      await lease.write({
        op: 'or',
        conditions: [
          { op: 'not_exists' },
          { op: 'lt', attribute: 'expires_at', value: now },
          { op: 'eq', attribute: 'owner', value: owner.id },
        ],
      });
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
      const current = await table.get({ name });
      const holder: LeaseOwner | undefined = current
        ? { id: String(current.owner), host: String(current.host), pid: Number(current.pid) }
        : undefined;
      if (holder && options.isAlive?.(holder) === false) {
        // The holder's process is gone: take over, provided nobody else did first.
        await lease.write({ op: 'eq', attribute: 'owner', value: holder.id }).catch((e: unknown) => {
          if (e instanceof ConditionFailedError)
            throw new LeaseHeldError(`lease "${name}" was taken by another run`);
          throw e;
        });
      } else {
        const until = current ? new Date(Number(current.expires_at)).toISOString() : 'unknown';
        throw new LeaseHeldError(
          `"${name}" is busy: run ${holder?.id ?? '?'} (pid ${holder?.pid ?? '?'} on ${holder?.host ?? '?'}) holds its lease until ${until}`,
        );
      }
    }
    lease.timer = setInterval(
      () => {
        lease.renew().catch(() => {});
      },
      Math.max(10, Math.floor(ttlMs / 3)),
    );
    lease.timer.unref();
    return lease;
  }

  /** Extends the lease by its ttl. @throws {LeaseHeldError} when it was lost to another owner. */
  async renew(): Promise<void> {
    if (this.released) return;
    try {
      await this.write({ op: 'eq', attribute: 'owner', value: this.owner.id });
    } catch (error) {
      if (error instanceof ConditionFailedError) throw new LeaseHeldError(`lease "${this.name}" was lost`);
      throw error;
    }
  }

  /** Gives the lease up (idempotent). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    await this.table
      .delete({ name: this.name }, { condition: { op: 'eq', attribute: 'owner', value: this.owner.id } })
      .catch((error: unknown) => {
        if (!(error instanceof ConditionFailedError)) throw error;
      });
  }

  private async write(condition: Condition): Promise<void> {
    const now = this.clock.now().getTime();
    await this.table.put(
      {
        name: this.name,
        owner: this.owner.id,
        host: this.owner.host,
        pid: this.owner.pid,
        acquired_at: new Date(now).toISOString(),
        expires_at: now + this.ttlMs,
      },
      { condition },
    );
  }
}

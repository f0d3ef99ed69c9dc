/**
 * Nexmark q5 and q7 on sluice's stream engine (as nexmark-flink's SQL, with its 4 s watermark
 * delay, `WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`), and independent plain-loop
 * computations of the same results to check them.
 */
import {
  type DataStream,
  SlidingEventTimeWindows,
  type SourceStream,
  StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  watermarkStrategy,
} from '../../src/engines/stream/index.ts';
import { BID, type Bid, type NexmarkEvent } from './generator.ts';

/** q5 result: an auction with the most bids in the sliding window `[start, end)`. */
export interface HotItem {
  readonly start: number;
  readonly end: number;
  readonly auction: number;
  readonly num: number;
}

/** q7 result: a bid with the highest price in the tumbling window `[start, end)`. */
export interface HighestBid {
  readonly start: number;
  readonly end: number;
  readonly auction: number;
  readonly bidder: number;
  readonly price: number;
  readonly dateTime: number;
}

export type QueryName = 'q5' | 'q7';
export const Q5_SIZE = 10_000;
export const Q5_SLIDE = 2_000;
export const Q7_SIZE = 10_000;
const WATERMARK_DELAY = 4_000;

/** A built query: push events, take checkpoints, end the input. */
export interface NexmarkJob {
  readonly env: StreamExecutionEnvironment;
  readonly source: SourceStream<NexmarkEvent>;
}

/**
 * Builds `query` with results going to `sink`.
 * - q5: bids keyed by auction, HOP(10 s, slide 2 s) counts; then the counts keyed by window end,
 *   in a 2 s tumbling window (the counts of a window `[s, s + 10 s)` carry timestamp `s + 10 s - 1`,
 *   so all counts of one window meet in one), keeping the auction(s) with the max count.
 * - q7: bids in 10 s tumbling windows (one key: a global window aggregate), keeping the max price
 *   and the bid(s) with it.
 */
export function buildQuery(query: QueryName, sink: (result: HotItem | HighestBid) => void): NexmarkJob {
  const env = new StreamExecutionEnvironment();
  const source = env.fromSource<NexmarkEvent>('nexmark', {
    watermarks: watermarkStrategy({ timestamp: (e) => e.dateTime, outOfOrderness: WATERMARK_DELAY }),
  });
  const bids = source.filter((e) => e.type === BID) as unknown as DataStream<Bid>;
  if (query === 'q5') {
    const counts = bids
      .keyBy((b) => b.auction)
      .window(SlidingEventTimeWindows.of(Q5_SIZE, Q5_SLIDE))
      .uid('q5-counts')
      .aggregate<number, number, { auction: number; num: number; end: number }>(
        { createAccumulator: () => 0, add: (_b, n) => n + 1, getResult: (n) => n },
        (auction, num, ctx, out) => out.collect({ auction, num, end: ctx.window.end }),
      );
    counts
      .keyBy((c) => c.end)
      .window(TumblingEventTimeWindows.of(Q5_SLIDE))
      .uid('q5-max')
      .aggregate<{ num: number; auctions: number[] }, { num: number; auctions: number[] }, HotItem>(
        {
          createAccumulator: () => ({ num: 0, auctions: [] }),
          add: (c, acc) => {
            if (c.num > acc.num) {
              acc.num = c.num;
              acc.auctions = [c.auction];
            } else if (c.num === acc.num) acc.auctions.push(c.auction);
            return acc;
          },
          getResult: (acc) => acc,
        },
        (end, acc, _ctx, out) => {
          for (const auction of acc.auctions)
            out.collect({ start: end - Q5_SIZE, end, auction, num: acc.num });
        },
      )
      .sinkTo(sink);
  } else {
    type Acc = { price: number; bids: Bid[] };
    bids
      .keyBy(() => 0)
      .window(TumblingEventTimeWindows.of(Q7_SIZE))
      .uid('q7-max')
      .aggregate<Acc, Acc, HighestBid>(
        {
          createAccumulator: () => ({ price: -1, bids: [] }),
          add: (b, acc) => {
            if (b.price > acc.price) {
              acc.price = b.price;
              acc.bids = [b];
            } else if (b.price === acc.price) acc.bids.push(b);
            return acc;
          },
          getResult: (acc) => acc,
        },
        (_key, acc, ctx, out) => {
          const { start, end } = ctx.window;
          for (const b of acc.bids) {
            out.collect({
              start,
              end,
              auction: b.auction,
              bidder: b.bidder,
              price: b.price,
              dateTime: b.dateTime,
            });
          }
        },
      )
      .sinkTo(sink);
  }
  return { env, source };
}

/** The same results by a plain loop over the events (no engine), sorted as {@link canonical}. */
export function expectedResults(query: QueryName, events: Iterable<NexmarkEvent>): string[] {
  const out: (HotItem | HighestBid)[] = [];
  if (query === 'q5') {
    const windows = new Map<number, Map<number, number>>();
    for (const e of events) {
      if (e.type !== BID) continue;
      const last = e.dateTime - (e.dateTime % Q5_SLIDE);
      for (let start = last; start > e.dateTime - Q5_SIZE; start -= Q5_SLIDE) {
        let counts = windows.get(start);
        if (counts === undefined) {
          counts = new Map();
          windows.set(start, counts);
        }
        counts.set(e.auction, (counts.get(e.auction) ?? 0) + 1);
      }
    }
    for (const [start, counts] of windows) {
      const max = Math.max(...counts.values());
      for (const [auction, num] of counts)
        if (num === max) out.push({ start, end: start + Q5_SIZE, auction, num });
    }
  } else {
    const windows = new Map<number, Bid[]>();
    for (const e of events) {
      if (e.type !== BID) continue;
      const start = e.dateTime - (e.dateTime % Q7_SIZE);
      const best = windows.get(start);
      if (best === undefined || e.price > best[0]!.price) windows.set(start, [e]);
      else if (e.price === best[0]!.price) best.push(e);
    }
    for (const [start, bids] of windows) {
      for (const b of bids) {
        out.push({
          start,
          end: start + Q7_SIZE,
          auction: b.auction,
          bidder: b.bidder,
          price: b.price,
          dateTime: b.dateTime,
        });
      }
    }
  }
  return canonical(out);
}

/** Results as sorted JSON strings with fixed member order, for comparing. */
export function canonical(results: readonly (HotItem | HighestBid)[]): string[] {
  return results
    .map((r) =>
      'num' in r
        ? JSON.stringify([r.start, r.end, r.auction, r.num])
        : JSON.stringify([r.start, r.end, r.auction, r.bidder, r.price, r.dateTime]),
    )
    .sort();
}

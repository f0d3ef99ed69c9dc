/**
 * A Nexmark event generator, written from the benchmark's definitions (github.com/nexmark/nexmark,
 * the nexmark-flink generator, itself after Apache Beam's Nexmark):
 *
 * - Event `n` (0-based, id = n) is a person, an auction or a bid by `n mod 50`: 1 person, 3
 *   auctions, 46 bids per 50 events (nexmark.yaml: person=2%, auction=6%, bid=92%).
 * - Ids: persons and auctions are numbered from 1000 in order of creation; categories from 10.
 * - Auction sellers and bidders: with probability 3/4 (hot sellers/bidders ratio 4) the "hot"
 *   person (the first of the latest block of 100 persons; bidders +1), otherwise one of the
 *   latest 1,000 active persons (plus a lead of 10 not created yet).
 * - Bid auctions: with probability 1/2 (hot auction ratio 2) the hot auction (the first of the
 *   latest block of 100 auctions), otherwise one of the latest 100 in-flight auctions (plus a lead
 *   of 10).
 * - Prices: `round(10^(6 u) * 100)` for `u` uniform in [0, 1) (bids, initial bids; reserve =
 *   initial bid + another price).
 * - Event time: `baseTime + n * 1e6 / rate` µs, i.e. event time advances at `rate` events per
 *   second (nexmark.yaml runs the Flink figures at 10,000,000 events/s: 100M events span 10 s).
 * - Channels/urls (hot channels ratio 2 over 4 hot channels, else one of 10,000), names, cities,
 *   states, e-mails and credit cards from the generator's lists, and `extra` padding so persons,
 *   auctions and bids average about 200, 500 and 100 bytes.
 *
 * Deterministic: each event's random numbers come from a PRNG seeded by (seed, event id), as the
 * reference seeds `new Random(eventId)`, so event `n` is the same whatever range it is generated in.
 * The PRNG is not Java's, so the values differ from nexmark-flink's; the distributions do not.
 */

export const FIRST_PERSON_ID = 1000;
export const FIRST_AUCTION_ID = 1000;
export const FIRST_CATEGORY_ID = 10;
const PERSON_PROPORTION = 1;
const AUCTION_PROPORTION = 3;
const TOTAL_PROPORTION = 50;
const NUM_CATEGORIES = 5;
const HOT_AUCTION_RATIO = 2;
const HOT_SELLERS_RATIO = 4;
const HOT_BIDDERS_RATIO = 4;
/** Size of the blocks whose first id is "hot". */
const HOT_BLOCK = 100;
const NUM_ACTIVE_PEOPLE = 1000;
const NUM_IN_FLIGHT_AUCTIONS = 100;
const PERSON_ID_LEAD = 10;
const AUCTION_ID_LEAD = 10;
const AVG_PERSON_BYTES = 200;
const AVG_AUCTION_BYTES = 500;
const AVG_BID_BYTES = 100;
const HOT_CHANNELS = ['Google', 'Facebook', 'Baidu', 'Apple'] as const;
const HOT_URLS = HOT_CHANNELS.map((c) => `https://www.nexmark.com/${c.toLowerCase()}/item.htm?query=1`);
const HOT_CHANNELS_RATIO = 2;
const CHANNELS = 10_000;
const FIRST_NAMES = [
  'Peter',
  'Paul',
  'Luke',
  'John',
  'Saul',
  'Vicky',
  'Kate',
  'Julie',
  'Sarah',
  'Deiter',
  'Walter',
];
const LAST_NAMES = ['Shultz', 'Abrams', 'Spencer', 'White', 'Bartels', 'Walton', 'Smith', 'Jones', 'Noris'];
const US_STATES = ['AZ', 'CA', 'ID', 'OR', 'WA', 'WY'];
const US_CITIES = [
  'Phoenix',
  'Los Angeles',
  'San Francisco',
  'Boise',
  'Portland',
  'Bend',
  'Redmond',
  'Seattle',
  'Kent',
  'Cheyenne',
];

export const PERSON = 0;
export const AUCTION = 1;
export const BID = 2;

export interface Person {
  readonly type: typeof PERSON;
  readonly id: number;
  readonly name: string;
  readonly emailAddress: string;
  readonly creditCard: string;
  readonly city: string;
  readonly state: string;
  readonly dateTime: number;
  readonly extra: string;
}

export interface Auction {
  readonly type: typeof AUCTION;
  readonly id: number;
  readonly itemName: string;
  readonly description: string;
  readonly initialBid: number;
  readonly reserve: number;
  readonly dateTime: number;
  readonly expires: number;
  readonly seller: number;
  readonly category: number;
  readonly extra: string;
}

export interface Bid {
  readonly type: typeof BID;
  readonly auction: number;
  readonly bidder: number;
  readonly price: number;
  readonly channel: string;
  readonly url: string;
  readonly dateTime: number;
  readonly extra: string;
}

export type NexmarkEvent = Person | Auction | Bid;

export interface GeneratorOptions {
  /** Events per second of event time (default 10,000,000, as nexmark.yaml). */
  readonly rate?: number;
  /** Event time of event 0, epoch ms (default 2024-01-01T00:00:00Z). */
  readonly baseTime?: number;
  readonly seed?: number;
}

/** A small PRNG (mulberry32) re-seeded per event. */
class Random {
  private state = 0;
  reseed(seed: number, eventId: number): void {
    let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(eventId | 0, 0xc2b2ae35);
    h ^= Math.floor(eventId / 4294967296) * 0x27d4eb2f;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    this.state = h ^ (h >>> 15);
  }
  /** Uniform in [0, 1), 32 bits. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform in [0, 1) with 53 bits. */
  nextDouble(): number {
    return (Math.floor(this.next() * 2 ** 21) * 2 ** 32 + this.next() * 2 ** 32) / 2 ** 53;
  }
  nextInt(n: number): number {
    return Math.floor(this.next() * n);
  }
  nextLong(n: number): number {
    return Math.floor(this.nextDouble() * n);
  }
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** The generator; `events(from, to)` gives events `[from, to)`, any range, same events. */
export class NexmarkGenerator {
  readonly rate: number;
  readonly baseTime: number;
  readonly seed: number;
  private readonly random = new Random();
  /** A pool of padding, sliced for `extra` (its content is not what any query reads). */
  private readonly pad: string;

  constructor(options: GeneratorOptions = {}) {
    this.rate = options.rate ?? 10_000_000;
    this.baseTime = options.baseTime ?? Date.UTC(2024, 0, 1);
    this.seed = options.seed ?? 42;
    if (!(this.rate > 0)) throw new RangeError(`rate must be > 0, got ${this.rate}`);
    let pad = '';
    const r = new Random();
    r.reseed(this.seed, -1);
    for (let i = 0; i < 4096; i++) pad += LETTERS[r.nextInt(26)];
    this.pad = pad;
  }

  /** Event time of event `n`, epoch ms. */
  timestamp(n: number): number {
    return this.baseTime + Math.floor((n * 1000) / this.rate);
  }

  /** Events `[from, to)` in order. */
  events(from: number, to: number): NexmarkEvent[] {
    const out: NexmarkEvent[] = new Array(Math.max(0, to - from));
    for (let n = from; n < to; n++) out[n - from] = this.event(n);
    return out;
  }

  event(n: number): NexmarkEvent {
    const random = this.random;
    random.reseed(this.seed, n);
    const dateTime = this.timestamp(n);
    const offset = n % TOTAL_PROPORTION;
    if (offset < PERSON_PROPORTION) return this.person(n, dateTime);
    if (offset < PERSON_PROPORTION + AUCTION_PROPORTION) return this.auction(n, dateTime);
    return this.bid(n, dateTime);
  }

  private person(n: number, dateTime: number): Person {
    const r = this.random;
    const name = `${FIRST_NAMES[r.nextInt(FIRST_NAMES.length)]} ${LAST_NAMES[r.nextInt(LAST_NAMES.length)]}`;
    const emailAddress = `${this.string(7)}@${this.string(5)}.com`;
    let creditCard = '';
    for (let i = 0; i < 4; i++)
      creditCard += `${i > 0 ? ' ' : ''}${String(r.nextInt(10000)).padStart(4, '0')}`;
    const city = US_CITIES[r.nextInt(US_CITIES.length)]!;
    const state = US_STATES[r.nextInt(US_STATES.length)]!;
    const size = 8 + name.length + emailAddress.length + creditCard.length + city.length + state.length;
    return {
      type: PERSON,
      id: lastBase0PersonId(n) + FIRST_PERSON_ID,
      name,
      emailAddress,
      creditCard,
      city,
      state,
      dateTime,
      extra: this.extra(size, AVG_PERSON_BYTES),
    };
  }

  private auction(n: number, dateTime: number): Auction {
    const r = this.random;
    const seller =
      (r.nextInt(HOT_SELLERS_RATIO) > 0
        ? Math.floor(lastBase0PersonId(n) / HOT_BLOCK) * HOT_BLOCK
        : nextBase0PersonId(n, r)) + FIRST_PERSON_ID;
    const category = FIRST_CATEGORY_ID + r.nextInt(NUM_CATEGORIES);
    const initialBid = price(r);
    const itemName = this.string(20);
    const description = this.string(100);
    const reserve = initialBid + price(r);
    // Auctions last up to twice the event time it takes to create the next 100 in-flight ones.
    const horizon =
      this.timestamp(n + (NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION) / AUCTION_PROPORTION) - dateTime;
    const expires = dateTime + 1 + r.nextLong(Math.max(horizon * 2, 1));
    const size = 8 + itemName.length + description.length + 8 + 8 + 8 + 8 + 8;
    return {
      type: AUCTION,
      id: lastBase0AuctionId(n) + FIRST_AUCTION_ID,
      itemName,
      description,
      initialBid,
      reserve,
      dateTime,
      expires,
      seller,
      category,
      extra: this.extra(size, AVG_AUCTION_BYTES),
    };
  }

  private bid(n: number, dateTime: number): Bid {
    const r = this.random;
    const auction =
      (r.nextInt(HOT_AUCTION_RATIO) > 0
        ? Math.floor(lastBase0AuctionId(n) / HOT_BLOCK) * HOT_BLOCK
        : nextBase0AuctionId(n, r)) + FIRST_AUCTION_ID;
    const bidder =
      (r.nextInt(HOT_BIDDERS_RATIO) > 0
        ? Math.floor(lastBase0PersonId(n) / HOT_BLOCK) * HOT_BLOCK + 1
        : nextBase0PersonId(n, r)) + FIRST_PERSON_ID;
    const bidPrice = price(r);
    let channel: string;
    let url: string;
    if (r.nextInt(HOT_CHANNELS_RATIO) > 0) {
      const i = r.nextInt(HOT_CHANNELS.length);
      channel = HOT_CHANNELS[i]!;
      url = HOT_URLS[i]!;
    } else {
      const c = r.nextInt(CHANNELS);
      channel = `channel-${c}`;
      url = `https://www.nexmark.com/${this.string(5)}/${this.string(5)}/item.htm?query=1&channel_id=${c}`;
    }
    const size = 8 + 8 + 8 + 8 + channel.length + url.length;
    return {
      type: BID,
      auction,
      bidder,
      price: bidPrice,
      channel,
      url,
      dateTime,
      extra: this.extra(size, AVG_BID_BYTES),
    };
  }

  private string(length: number): string {
    const start = this.random.nextInt(this.pad.length - length);
    return this.pad.slice(start, start + length);
  }

  /** Padding so the event averages `average` bytes: uniform length around the shortfall. */
  private extra(size: number, average: number): string {
    const want = average - size;
    if (want <= 0) return '';
    const length = Math.floor(want * 0.8 + this.random.nextInt(Math.floor(want * 0.4) + 1));
    const start = this.random.nextInt(this.pad.length - length);
    return this.pad.slice(start, start + length);
  }
}

/** Base-0 id of the latest person created at or before event `n`. */
export function lastBase0PersonId(n: number): number {
  const epoch = Math.floor(n / TOTAL_PROPORTION);
  let offset = n % TOTAL_PROPORTION;
  if (offset >= PERSON_PROPORTION) offset = PERSON_PROPORTION - 1;
  return epoch * PERSON_PROPORTION + offset;
}

/** Base-0 id of the latest auction created at or before event `n` (-1 before the first). */
export function lastBase0AuctionId(n: number): number {
  let epoch = Math.floor(n / TOTAL_PROPORTION);
  let offset = n % TOTAL_PROPORTION;
  if (offset < PERSON_PROPORTION) {
    epoch--;
    offset = AUCTION_PROPORTION - 1;
  } else if (offset >= PERSON_PROPORTION + AUCTION_PROPORTION) offset = AUCTION_PROPORTION - 1;
  else offset -= PERSON_PROPORTION;
  return epoch * AUCTION_PROPORTION + offset;
}

function nextBase0PersonId(n: number, r: Random): number {
  const people = lastBase0PersonId(n) + 1;
  const active = Math.min(people, NUM_ACTIVE_PEOPLE);
  return people - active + r.nextLong(active + PERSON_ID_LEAD);
}

function nextBase0AuctionId(n: number, r: Random): number {
  const max = lastBase0AuctionId(n);
  const min = Math.max(max - NUM_IN_FLIGHT_AUCTIONS, 0);
  return min + r.nextLong(max - min + 1 + AUCTION_ID_LEAD);
}

function price(r: Random): number {
  return Math.round(10 ** (r.nextDouble() * 6) * 100);
}

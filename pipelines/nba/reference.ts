import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PipelineContext } from '../../src/core/context.ts';
import type { KvTable } from '../../src/core/ports/kv-table.ts';

/** A player of the `players` table (the original's DynamoDB items: hash key `account`, GSI on `name`). */
export interface PlayerRecord {
  /** Twitter handle, without `@` (the original's hash key). */
  readonly account: string;
  /** Full name, as Twitter's context annotations name athletes (`Jaylen Brown`). */
  readonly name: string;
  /** Team name (free text in the seed, `teamName` of nba_teams.json otherwise). */
  readonly team: string;
}

/** A change of `tampering_control`: `control: true` suppresses the team's tweets in the tampering job. */
export interface ControlRecord {
  readonly team: string;
  readonly control: boolean;
}

/** The bundled reference data (copied from ../shared/data/nba-tampering/, see its PROVENANCE.md). */
export const NBA_DATA_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../examples/data/nba',
);

/** Files of {@link NBA_DATA_DIR}. */
export const NBA_FILES = {
  tweets: 'nba_player_mention_tweets_v2.ndjson.gz',
  seedPlayers: 'seed_players_dynamodb_items.json',
  handles: 'nba_player_twitter_handles_bbref.csv',
  players2021: 'nba_players_2021.json',
  teams: 'nba_teams.json',
} as const;

/** Key-value table of players, hash key `account` (the original's `${name_prefix}-players`). */
export const PLAYERS_TABLE = 'players';
/**
 * The name lookup: the original queries the GSI `PlayerNameIndex` (hash key `name`) of `players`.
 * The key-value port has no secondary indexes, so the loader writes a second table keyed by `name`
 * with the same items (`{name, account, team}`): the GSI as a table the writer keeps in sync. A GSI
 * may hold several items per name; this table holds one (the first player of the list with that
 * name), which is what the original's lookup uses (the first item of the query).
 */
export const PLAYERS_BY_NAME_TABLE = 'players_by_name';
/** Key-value table of team controls, hash key `team`, with a change stream (the control stream's source). */
export const CONTROL_TABLE = 'tampering_control';

/** How the default players list was built from the reference files. */
export interface PlayersJoinReport {
  /** Items of the seed (`seed_players_dynamodb_items.json`), all kept. */
  readonly seed: number;
  /** Rows of the handles CSV. */
  readonly handles: number;
  /** Derived players added (joined to a 2020-21 roster with a team, account not in the seed). */
  readonly derived: number;
  /** Handles whose account the seed already has (the seed's item wins). */
  readonly inSeed: number;
  /** Handles whose player name occurs more than once in the CSV (two players, one name): skipped. */
  readonly ambiguousName: number;
  /** Handles whose player is not on a 2020-21 roster (retired, or a name spelled differently): skipped. */
  readonly notOnRoster: number;
  /** Handles whose player is on the 2020-21 list without a team (`teamId` 0): skipped. */
  readonly noTeam: number;
}

/**
 * Folds a name for the join: Unicode NFD without diacritics, lower case, letters and spaces only
 * (`Luka Dončić` -> `luka doncic`, `D'Angelo` -> `dangelo`).
 */
export function foldName(name: string): string {
  return name
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z ]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Parses the handles CSV (`BBRef_Player_ID,Player,Twitter`; simple CSV with optional quotes). */
function parseHandlesCsv(text: string): { player: string; handle: string }[] {
  const out: { player: string; handle: string }[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (const line of lines.slice(1)) {
    if (line.trim() === '') continue;
    const fields: string[] = [];
    let current = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') {
          current += '"';
          i++;
        } else if (c === '"') quoted = false;
        else current += c;
      } else if (c === '"') quoted = true;
      else if (c === ',') {
        fields.push(current);
        current = '';
      } else current += c;
    }
    fields.push(current);
    const player = fields[1]?.trim();
    const handle = fields[2]?.trim().replace(/^@/, '');
    if (player && handle) out.push({ player, handle });
  }
  return out;
}

/**
 * The default players list, from the bundled reference files:
 *
 * 1. the seed's six items (`seed_players_dynamodb_items.json`, the original's `main.tf` table
 *    items), unchanged: their free-text teams (`LA Lakers`, `BK Nets`, ...) and names (`Lebron
 *    James`) are the original's;
 * 2. then each row of `nba_player_twitter_handles_bbref.csv` (handle -> player name), joined by
 *    folded name ({@link foldName}) with `nba_players_2021.json` (2020-21 rosters: name ->
 *    `teamId`) and `nba_teams.json` (`teamId` -> `teamName`, e.g. `Boston Celtics`). The player's
 *    `name` is the CSV's (basketball-reference spelling, with diacritics: it matches Twitter's
 *    athlete entity names best), the `team` is the roster's `teamName`.
 *
 * What does not match is skipped (counted in the report): handles whose account the seed has
 * (6: the seed's item wins), names that occur twice in the CSV (4 names, 8 rows, e.g. two Devin
 * Bookers: which handle is whose is unknowable from the join), players not on a 2020-21 roster
 * (1,115: retired before 2020 or spelled differently) and players listed without a team (37).
 * On the bundled files: 6 seed + 471 derived = 477 players. Note that the seed's teams are spelled
 * differently from the derived ones (`LA Lakers` vs `Los Angeles Lakers`): the tampering job compares
 * team strings, as the original did.
 */
export function defaultPlayers(dir: string = NBA_DATA_DIR): {
  players: PlayerRecord[];
  report: PlayersJoinReport;
} {
  const seed = JSON.parse(readFileSync(path.join(dir, NBA_FILES.seedPlayers), 'utf8')) as PlayerRecord[];
  const roster = JSON.parse(readFileSync(path.join(dir, NBA_FILES.players2021), 'utf8')) as {
    firstName: string;
    lastName: string;
    teamId: number;
  }[];
  const teams = JSON.parse(readFileSync(path.join(dir, NBA_FILES.teams), 'utf8')) as {
    teamId: number;
    teamName: string;
  }[];
  const handles = parseHandlesCsv(readFileSync(path.join(dir, NBA_FILES.handles), 'utf8'));

  const teamById = new Map(teams.map((t) => [t.teamId, t.teamName]));
  const rosterByName = new Map<string, number>();
  for (const p of roster) {
    const key = foldName(`${p.firstName} ${p.lastName}`);
    if (!rosterByName.has(key)) rosterByName.set(key, p.teamId);
  }
  const nameCount = new Map<string, number>();
  for (const h of handles) nameCount.set(foldName(h.player), (nameCount.get(foldName(h.player)) ?? 0) + 1);

  const players: PlayerRecord[] = seed.map((s) => ({ account: s.account, name: s.name, team: s.team }));
  const accounts = new Set(players.map((p) => p.account));
  let inSeed = 0;
  let ambiguousName = 0;
  let notOnRoster = 0;
  let noTeam = 0;
  let derived = 0;
  for (const h of handles) {
    const key = foldName(h.player);
    if (accounts.has(h.handle)) {
      inSeed++;
      continue;
    }
    if ((nameCount.get(key) ?? 0) > 1) {
      ambiguousName++;
      continue;
    }
    const teamId = rosterByName.get(key);
    if (teamId === undefined) {
      notOnRoster++;
      continue;
    }
    const team = teamById.get(teamId);
    if (teamId === 0 || team === undefined) {
      noTeam++;
      continue;
    }
    accounts.add(h.handle);
    players.push({ account: h.handle, name: h.player, team });
    derived++;
  }
  return {
    players,
    report: {
      seed: seed.length,
      handles: handles.length,
      derived,
      inSeed,
      ambiguousName,
      notOnRoster,
      noTeam,
    },
  };
}

/** The reference tables, opened. */
export interface ReferenceTables {
  readonly players: KvTable;
  readonly playersByName: KvTable;
  readonly control: KvTable;
}

/** Opens `players`, `players_by_name` and `tampering_control` (the latter with its change stream). */
export async function openReferenceTables(ctx: PipelineContext): Promise<ReferenceTables> {
  const { kv } = ctx.backend;
  return {
    players: await kv.table(PLAYERS_TABLE, { hashKey: { name: 'account', type: 'S' } }),
    playersByName: await kv.table(PLAYERS_BY_NAME_TABLE, { hashKey: { name: 'name', type: 'S' } }),
    control: await kv.table(CONTROL_TABLE, { hashKey: { name: 'team', type: 'S' } }, { stream: true }),
  };
}

/**
 * Loads the reference data into the key-value tables: every player into `players` (by `account`)
 * and into `players_by_name` (by `name`; the first player of the list wins a shared name), then
 * the control changes into `tampering_control` in order (each a put `{team, control}`, so its change
 * stream carries INSERT/MODIFY records the control stream reads). Idempotent: re-loading puts the
 * same items (a control put with an unchanged value still records a MODIFY, as DynamoDB does).
 *
 * @param options.players default: {@link defaultPlayers}.
 * @param options.control default: none.
 */
export async function loadReferenceData(
  ctx: PipelineContext,
  options: { players?: readonly PlayerRecord[]; control?: readonly ControlRecord[] } = {},
): Promise<{ players: number; names: number; control: number; tables: ReferenceTables }> {
  const players = options.players ?? defaultPlayers().players;
  const tables = await openReferenceTables(ctx);
  const names = new Set<string>();
  for (const p of players) {
    if (!p.account || !p.name || !p.team) {
      throw new Error(`a player needs account, name and team: ${JSON.stringify(p)}`);
    }
    await tables.players.put({ account: p.account, name: p.name, team: p.team });
    if (!names.has(p.name)) {
      names.add(p.name);
      await tables.playersByName.put({ name: p.name, account: p.account, team: p.team });
    }
  }
  for (const c of options.control ?? []) {
    await tables.control.put({ team: c.team, control: c.control });
  }
  return { players: players.length, names: names.size, control: options.control?.length ?? 0, tables };
}

import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (src/deploy/../..). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The Lambda entry module every function of a stack runs (`runtime/aws/lambda.taskHandler`, `runtime/aws/lambda.s3Handler`, ...; see HANDLER_MODULE). */
export const DEFAULT_ENTRY = path.join(REPO_ROOT, 'src/runtime/aws/lambda.ts');

/**
 * Packages shipped in the runtime layer (`/opt/nodejs/node_modules`) instead of the bundle:
 * DuckDB (a native addon; esbuild cannot bundle a `.node` file) with its loader's dependency, and
 * packages the code loads with `createRequire` at run time (vader-sentiment in hashtags' enrich),
 * which esbuild cannot follow. The binding is `linux-x64`, so every function runs on x86_64.
 */
export const LAYER_PACKAGES = [
  '@duckdb/node-api',
  '@duckdb/node-bindings',
  '@duckdb/node-bindings-linux-x64',
  'detect-libc',
  'vader-sentiment',
] as const;

/**
 * Where the bundle sits inside the code asset, and so the handler module of every function
 * (`runtime/aws/lambda.taskHandler`). It is two directories deep, as the bundled sources are
 * (`pipelines/<name>/x.ts`, `src/<area>/x.ts` is deeper but reads nothing relative), so a path a
 * source resolves relative to itself (`../../examples/data/nba`) resolves to the same place inside
 * the asset, where {@link bundleRuntime} copies it.
 */
export const HANDLER_DIR = 'runtime/aws';

/** The handler module of every function: `${HANDLER_MODULE}.taskHandler` etc. */
export const HANDLER_MODULE = `${HANDLER_DIR}/lambda`;

/** Packages that must never be in a Lambda bundle (the local backend's SQLite; a native addon built for this machine). */
export const FORBIDDEN_IN_BUNDLE = ['better-sqlite3'] as const;

/** Options of {@link bundleRuntime}. */
export interface BundleOptions {
  /** Entry module (default {@link DEFAULT_ENTRY}). */
  readonly entry?: string;
  /** Directory the code and layer directories are written under (default: a new temp directory). */
  readonly workDir?: string;
  /** `node_modules` the layer packages are copied from (default `<repo>/node_modules`). */
  readonly nodeModules?: string;
}

/** What {@link bundleRuntime} produced. */
export interface RuntimeBundle {
  /** The directory holding `code/` and `layer/`. */
  readonly workDir: string;
  /** True when {@link bundleRuntime} created {@link workDir} itself (a temp directory to remove after synthesis). */
  readonly temporary: boolean;
  /** Directory with `runtime/aws/lambda.mjs` (+ companion files): one `Code.fromAsset` shared by every function. */
  readonly codeDir: string;
  /** Directory with `nodejs/node_modules/<LAYER_PACKAGES>`: the runtime layer's asset. */
  readonly layerDir: string;
  /**
   * Content hash of the layer: SHA-256 of each layer package's name, version and file sizes, so the
   * 70 MB directory is not fingerprinted again by every stack that uses it.
   */
  readonly layerHash: string;
  /** Bundle size in bytes. */
  readonly bytes: number;
  /** Repository-relative source files in the bundle (from esbuild's metafile). */
  readonly inputs: readonly string[];
  /** Directories copied beside the bundle because code reads them relative to `import.meta.url`. */
  readonly companions: readonly string[];
}

/**
 * Bundles the Lambda runtime once with esbuild (no Docker): ESM (`lambda.mjs`), platform node,
 * target node22. The AWS SDK v3 is bundled, not left to the runtime's copy: the functions then run
 * the SDK version the tests ran (`@aws-sdk/lib-storage`, which the runtime may lack, and the Data
 * API's session parameters included), as AWS advises for production code
 * (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-package.html). `@duckdb/*` is external
 * (a native addon, shipped in the layer). A `require` shim is added for bundled CommonJS code.
 *
 * Code that reads files next to itself (`new URL('./queries/x.sql', import.meta.url)`) keeps
 * working: each such directory of a bundled source is copied beside `lambda.mjs`.
 *
 * @throws {Error} when esbuild fails (naming the unresolved import), when the bundle contains a
 *   {@link FORBIDDEN_IN_BUNDLE} package (naming the importer chain's first file), when two companion
 *   directories collide, or when a layer package is not installed.
 */
export async function bundleRuntime(options: BundleOptions = {}): Promise<RuntimeBundle> {
  const entry = options.entry ?? DEFAULT_ENTRY;
  if (!existsSync(entry)) throw new Error(`the Lambda entry ${entry} does not exist`);
  const workDir = options.workDir ?? mkdtempSync(path.join(os.tmpdir(), 'sluice-deploy-'));
  const codeDir = path.join(workDir, 'code');
  rmSync(codeDir, { recursive: true, force: true });
  mkdirSync(codeDir, { recursive: true });
  const bundleDir = path.join(codeDir, HANDLER_DIR);
  mkdirSync(bundleDir, { recursive: true });
  const outfile = path.join(bundleDir, 'lambda.mjs');

  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    external: ['@duckdb/*'],
    // Error classes keep their names when esbuild renames colliding identifiers: sluice errors set
    // `name = new.target.name`, and that name is what a state machine's Retry/Catch matches.
    keepNames: true,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
    banner: {
      js: "import { createRequire as __sluiceCreateRequire } from 'node:module'; const require = __sluiceCreateRequire(import.meta.url);",
    },
  });
  const metafile = result.metafile;
  const inputs = Object.keys(metafile.inputs);

  for (const name of FORBIDDEN_IN_BUNDLE) {
    const bundled = inputs.filter((input) => input.includes(`node_modules/${name}/`));
    const imported = inputs.filter((input) =>
      (metafile.inputs[input]?.imports ?? []).some((i) => i.path === name || i.path.startsWith(`${name}/`)),
    );
    if (bundled.length > 0 || imported.length > 0) {
      throw new Error(
        `the Lambda bundle must not contain ${name} (the local backend's native SQLite): imported by ${[...imported, ...bundled][0]}; keep the local backend out of ${path.relative(REPO_ROOT, entry)}'s imports`,
      );
    }
  }

  const companions: string[] = [];
  const copiedFrom = new Map<string, string>();
  const copiedData = new Set<string>();
  for (const input of inputs) {
    if (input.includes('node_modules/')) continue;
    const file = path.resolve(process.cwd(), input);
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/new URL\(\s*[`'"]\.\/([A-Za-z0-9_-]+)\//g)) {
      const dirName = match[1] ?? '';
      const source = path.join(path.dirname(file), dirName);
      if (!existsSync(source)) continue;
      const previous = copiedFrom.get(dirName);
      if (previous !== undefined && previous !== source) {
        throw new Error(
          `two bundled modules read a directory named ${dirName} next to themselves (${previous}, ${source}); rename one`,
        );
      }
      if (previous === undefined) {
        cpSync(source, path.join(bundleDir, dirName), { recursive: true });
        copiedFrom.set(dirName, source);
        companions.push(path.relative(REPO_ROOT, source));
      }
    }
    // Data a module resolves above itself (`path.resolve(here, '../../examples/data/nba')`): copied
    // to the same place relative to the bundle, which sits as deep as the module (HANDLER_DIR).
    for (const match of text.matchAll(/[`'"]((?:\.\.\/)+[A-Za-z0-9_./-]+)[`'"]/g)) {
      const relative = match[1] ?? '';
      const source = path.resolve(path.dirname(file), relative);
      if (!source.startsWith(REPO_ROOT + path.sep) || !existsSync(source) || !statSync(source).isDirectory())
        continue;
      if (source.includes(`${path.sep}node_modules${path.sep}`) || copiedData.has(source)) continue;
      const target = path.resolve(bundleDir, relative);
      if (target !== path.join(codeDir, path.relative(REPO_ROOT, source))) {
        throw new Error(
          `${path.relative(REPO_ROOT, file)} reads ${relative} relative to itself but is not ${HANDLER_DIR.split('/').length} directories deep, so the path cannot resolve inside the Lambda code asset`,
        );
      }
      cpSync(source, target, { recursive: true });
      copiedData.add(source);
      companions.push(path.relative(REPO_ROOT, source));
    }
  }

  const { layerDir, layerHash } = buildLayer(
    workDir,
    options.nodeModules ?? path.join(REPO_ROOT, 'node_modules'),
  );
  const bytes =
    metafile.outputs[path.relative(process.cwd(), outfile)]?.bytes ?? readFileSync(outfile).length;
  return {
    workDir,
    temporary: options.workDir === undefined,
    codeDir,
    layerDir,
    layerHash,
    bytes,
    inputs: inputs.map((i) => path.relative(REPO_ROOT, path.resolve(process.cwd(), i))),
    companions,
  };
}

/** Copies {@link LAYER_PACKAGES} into `<workDir>/layer/nodejs/node_modules/`. */
function buildLayer(workDir: string, nodeModules: string): { layerDir: string; layerHash: string } {
  const layerDir = path.join(workDir, 'layer');
  const target = path.join(layerDir, 'nodejs', 'node_modules');
  rmSync(layerDir, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  for (const name of LAYER_PACKAGES) {
    const source = path.join(nodeModules, name);
    if (!existsSync(source)) {
      throw new Error(
        `the runtime layer needs ${name}, which is not installed in ${nodeModules} (run npm ci on linux-x64)`,
      );
    }
    cpSync(source, path.join(target, name), { recursive: true, dereference: true });
  }
  const hash = createHash('sha256');
  for (const name of LAYER_PACKAGES) {
    const files = readdirSync(path.join(target, name), { recursive: true, encoding: 'utf8' }).sort();
    hash.update(`${name}\n`);
    for (const file of files) {
      const stat = statSync(path.join(target, name, file));
      if (stat.isFile()) hash.update(`${file}\t${stat.size}\n`);
    }
    hash.update(readFileSync(path.join(target, name, 'package.json')));
  }
  writeFileSync(
    path.join(layerDir, 'nodejs', 'README.txt'),
    `sluice runtime layer: ${LAYER_PACKAGES.join(', ')} (linux-x64 DuckDB binding: x86_64 functions only)\n`,
  );
  return { layerDir, layerHash: hash.digest('hex') };
}

/**
 * Benchmarks: `npm run bench -- <name> [options]`. Each prints ratios against a baseline measured in
 * the same run, and with `--json` one JSON object on its last line.
 */
const benches: Record<string, () => Promise<{ main(argv: string[]): Promise<void> }>> = {
  dashboard: () => import('./dashboard.ts'),
  gharchive: () => import('./gharchive.ts'),
  hashtags: () => import('./hashtags.ts'),
  orchestration: () => import('./orchestration.ts'),
  stream: () => import('./stream.ts'),
  tolls: () => import('./tolls.ts'),
};

const [name, ...rest] = process.argv.slice(2);
const load = name ? benches[name] : undefined;
if (!load) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json]\n`);
  process.exit(2);
}
await (await load()).main(rest);

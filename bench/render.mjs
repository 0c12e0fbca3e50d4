// Prints the markdown report of a finished run again (e.g. for docs/bench.md):
//   node bench/render.mjs [bench/results/latest.json]
import fs from 'node:fs';
import { ratios, render, targets } from './lib/report.mjs';

const res = JSON.parse(fs.readFileSync(process.argv[2] ?? new URL('./results/latest.json', import.meta.url), 'utf8'));
res.ratios = ratios(res);
res.targets = targets(res);
process.stdout.write(render(res));

import { ImageWriter } from './build/index.js';
import { execSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { regionLayout, regionOptions } from './build/bench/layout.js';
const total = 512 << 20;
const regions = +(process.argv[2] || 1);
const layout = regionLayout(total, regions);
const opts = JSON.parse(process.argv[3] || '{}');
const res = [];
for (let i = 0; i < 6; i++) {
  rmSync('/tmp/x/w.img', { force: true }); rmSync('/tmp/x/cat.out', { force: true }); execSync('sync');
  let t = process.hrtime.bigint(); execSync('cat /tmp/x/input.bin > /tmp/x/cat.out'); const c = Number(process.hrtime.bigint() - t) / 1e9;
  execSync('sync'); rmSync('/tmp/x/cat.out'); execSync('sync');
  t = process.hrtime.bigint();
  const w = await ImageWriter.create('/tmp/x/w.img', { fsync: false, ...opts });
  for (const r of layout) await w.addRegion(regionOptions(r, { path: '/tmp/x/input.bin', position: r.fileOffset, length: r.length }));
  const s = await w.finish();
  const e = Number(process.hrtime.bigint() - t) / 1e9;
  res.push(c / e);
  console.log(regions, 'cat', c.toFixed(3), 'writer', e.toFixed(3), 'ratio', (c / e).toFixed(2), 'size', (s.fileSize / total).toFixed(3));
}
res.sort(); console.log('median ratio', ((res[2] + res[3]) / 2).toFixed(2));

// Records a hash of the editor's sources beside the built bundle; the Rust test
// `editor_bundle_is_current` recomputes it, so a stale committed bundle fails `cargo test`
// without needing npm. Same file list and byte layout as that test.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('.', import.meta.url).pathname;
const files = ['package.json', 'package-lock.json', 'vite.config.js', 'stamp.mjs'].map((f) => join(root, f));
const walk = (d) => readdirSync(d).forEach((n) => {
  const p = join(d, n);
  if (statSync(p).isDirectory()) walk(p); else files.push(p);
});
walk(join(root, 'src'));
const rel = files.map((p) => [relative(root, p).split('\\').join('/'), p]);
rel.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
const h = createHash('sha256');
for (const [name, path] of rel) {
  h.update(Buffer.from(name)); h.update(Buffer.from([0]));
  h.update(readFileSync(path)); h.update(Buffer.from([0]));
}
writeFileSync(join(root, '../src/lib/http/ui/editor/SOURCE_HASH'), h.digest('hex') + '\n');

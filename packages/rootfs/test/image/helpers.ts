import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** One line per path: type, mode, owner, size and link target, for whole-tree comparisons. */
export function describeTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      const type = st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isFile()
            ? 'file'
            : st.isFIFO()
              ? 'fifo'
              : st.isCharacterDevice()
                ? `char:${st.rdev}`
                : 'other';
      const extra = st.isSymbolicLink()
        ? `-> ${readlinkSync(join(root, r))}`
        : st.isFile()
          ? String(st.size)
          : '';
      out.push(`${r} ${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${extra}`.trim());
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

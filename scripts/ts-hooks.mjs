// Module hooks that run llmtap's TypeScript: esbuild strips the types as each .ts file loads.
// Not tsx at run time: tsx compiles with keepNames, which wraps every closure in a name-setting call (~10 µs a request).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const source = await readFile(path, 'utf8');
  const out = await transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline', sourcefile: path });
  return { format: 'module', source: out.code, shortCircuit: true };
}

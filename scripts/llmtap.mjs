#!/usr/bin/env node
// The llmtap command (npm start, the package bin): registers the TypeScript hooks, then runs src/main.ts.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
await import('../src/main.ts');

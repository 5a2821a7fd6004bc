#!/usr/bin/env node
// The llmtap-inspect command (npm run inspect, the package bin): registers the TypeScript hooks, then runs the inspector.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
await import('./inspect-capture.ts');

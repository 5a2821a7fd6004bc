#!/usr/bin/env node
// The llmtap command (npm start, the package bin): loads TypeScript through tsx, then runs src/main.ts.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');

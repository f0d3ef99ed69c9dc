#!/usr/bin/env node
// The `sluice` command. sluice is written in TypeScript and runs through tsx's loader, so the bin
// works right after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');

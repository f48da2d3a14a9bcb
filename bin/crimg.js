#!/usr/bin/env node
await (await import('../build/inspect-cli/main.js')).run();

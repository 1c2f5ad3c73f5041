// Loads @cloudflare/sandbox in plain Node (see docs/sdk-contract.md §1):
//   node --import ./register.mjs sdk.test.mjs
import { register } from 'node:module';

register('./cf-hooks.mjs', import.meta.url);

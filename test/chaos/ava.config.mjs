// `npm run test:chaos`: the slow fault-injection and fuzzing suite, with the same settings as `npm test`'s.
import { readFileSync } from 'node:fs';

const { ava } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));

export default { ...ava, files: ['test/chaos/**/*.test.ts'] };

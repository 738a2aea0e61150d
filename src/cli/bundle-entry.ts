// The entry of the bundled CLI (dist/ebp.cjs, made by `npm run build`): bin/ebp compiles that one
// file with V8's code cache (cli/code-cache.ts) and it runs the same main() as the modules do.
import { main } from './main.js';

void main(process.argv.slice(2)).then((status) => {
  process.exitCode = status;
});

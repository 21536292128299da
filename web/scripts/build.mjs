// Bundles src/ into dist/: index.html, app.js and app.css, the three files
// `timesheets serve` embeds. Output is deterministic (no timestamps, no
// sourcemaps, no content hashes), so `npm run check` can compare a rebuild
// with the committed copy byte for byte.
import { build } from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(web, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  absWorkingDir: web,
  entryPoints: { app: "src/main.ts" },
  outdir: "dist",
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2022", "chrome109", "firefox115", "safari16"],
  platform: "browser",
  sourcemap: false,
  legalComments: "eof",
  charset: "ascii",
  logLevel: "warning",
});
await copyFile(join(web, "src", "index.html"), join(dist, "index.html"));

const files = (await readdir(dist)).sort();
const expected = ["app.css", "app.js", "index.html"];
if (files.join() !== expected.join()) {
  throw new Error(`dist/ holds ${files.join(", ")}; the server embeds exactly ${expected.join(", ")}`);
}
console.log(`built dist/: ${files.join(", ")}`);

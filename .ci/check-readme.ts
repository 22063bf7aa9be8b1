/**
 * Every TypeScript block of the README must type-check as written: each ```ts block becomes a
 * module of a scratch project under .tmp/readme-check, where `relaychain` resolves to the source
 * (the repository's tsconfig paths), and tsc checks them all. A block that continues an earlier
 * one (it uses names declared there) is marked with `<!-- fragment: why -->` on the line above
 * its fence, and is reported as skipped.
 *
 *   npx tsx .ci/check-readme.ts [README.md]
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const readme = resolve(process.argv[2] ?? join(root, 'README.md'))
const out = join(root, '.tmp', 'readme-check')
const lines = readFileSync(readme, 'utf8').split('\n')

interface Block {
  line: number
  code: string
  fragment: string | undefined
}

const blocks: Block[] = []
for (let i = 0; i < lines.length; i++) {
  const open = /^(\s*)```(ts|typescript)\s*$/.exec(lines[i]!)
  if (!open) continue
  const indent = open[1]!.length
  const start = i + 1
  let end = start
  while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++
  if (end === lines.length) throw new Error(`${readme}:${i + 1}: unclosed code block`)
  const marker = /^\s*<!--\s*fragment:\s*(.+?)\s*-->\s*$/.exec(lines[i - 1] ?? '')
  blocks.push({
    line: i + 1,
    code: lines
      .slice(start, end)
      .map((l) => l.slice(indent))
      .join('\n'),
    fragment: marker?.[1],
  })
  i = end
}

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n')
const checked = blocks.filter((b) => !b.fragment)
for (const block of checked) {
  // `export {}` keeps a block without imports a module (top-level await, no global names).
  writeFileSync(join(out, `line-${block.line}.ts`), `${block.code}\nexport {}\n`)
}
const base = relative(out, join(root, 'tsconfig.json'))
writeFileSync(
  join(out, 'tsconfig.json'),
  `${JSON.stringify({ extends: base, compilerOptions: { noUnusedLocals: false }, include: ['*.ts'] }, null, 2)}\n`,
)
for (const block of blocks.filter((b) => b.fragment)) console.log(`README.md:${block.line}: skipped, a fragment (${block.fragment})`)
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', out], { encoding: 'utf8' })
const report = `${tsc.stdout}${tsc.stderr}`.replace(
  /^\S*line-(\d+)\.ts\((\d+),(\d+)\)/gm,
  (_m, block, l, c) => `README.md:${Number(block) + Number(l)}:${c}`,
)
if (tsc.status !== 0) {
  console.error(report)
  console.error(`README TypeScript blocks: ${checked.length} checked, type errors above`)
  process.exit(1)
}
console.log(`README TypeScript blocks: ${checked.length} type-check, ${blocks.length - checked.length} fragment(s) skipped`)

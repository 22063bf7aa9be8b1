/**
 * The reporting corpus (bounces and complaint reports from public test suites, see its README):
 * it lives beside the checkout, at `../shared/corpus/reporting`, and is never copied into the
 * repository. Missing, it fails the run instead of skipping tests.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const CORPUS = fileURLToPath(new URL('../../../shared/corpus/reporting/', import.meta.url))

if (!existsSync(`${CORPUS}bounces/EXPECTED.tsv`) || !existsSync(`${CORPUS}arf/EXPECTED.tsv`)) {
  throw new Error(`reporting corpus not found at ${CORPUS}: it is expected at ../shared/corpus/reporting beside the checkout`)
}

/** The rows of a corpus EXPECTED.tsv as objects keyed by its column names. */
export function expectations(folder: 'bounces' | 'arf'): Record<string, string>[] {
  const lines = readFileSync(`${CORPUS}${folder}/EXPECTED.tsv`, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
  const [header, ...rows] = lines.map((l) => l.split('\t'))
  return rows.map((cells) => Object.fromEntries(header!.map((name, i) => [name, cells[i] ?? ''])))
}

/** A corpus file's bytes. */
export function corpusFile(folder: 'bounces' | 'arf', file: string): Buffer {
  return readFileSync(`${CORPUS}${folder}/${file}`)
}

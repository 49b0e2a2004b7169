/**
 * Loading a TypeScript file that is not part of the compiled CLI (bench suites under bench/, user scripts).
 * From the sources (tests, `npm run cohort`) tsx is already registered and a plain import works; from the compiled dist/
 * the file goes through tsx's tsImport, loaded only here so that ordinary commands never pay for it.
 */
import { pathToFileURL } from 'node:url';

const runningFromSources = import.meta.url.endsWith('.ts');

export async function importTypeScript<T>(file: string): Promise<T> {
  if (runningFromSources) return (await import(pathToFileURL(file).href)) as T;
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(pathToFileURL(file).href, import.meta.url)) as T;
}

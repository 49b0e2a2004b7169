/**
 * Redaction of text that leaves the peer (gossiped failure reasons, declines, answers): local paths, file names, host names and
 * addresses are replaced by placeholders, so that a message tells the consortium *what* went wrong without telling it where the
 * hospital keeps its data. The full text stays in the local log.
 *
 *   redact("cannot read /srv/data/wdbc.csv on db01.local") -> "cannot read <path> on <host>"
 */
import { hostname } from 'node:os';

const MAX = 300;
const RULES: readonly [RegExp, string][] = [
  [/file:\/\/\S+/g, '<path>'],
  // relative, absolute POSIX, ~/ and Windows drive paths (up to the next space, quote or bracket)
  [/\.{1,2}\/[^\s'"`()[\]{}<>,;]+/g, '<path>'],
  [/(?:[A-Za-z]:\\|~\/|\/)(?:[^\s'"`()[\]{}<>,;]+)/g, '<path>'],
  [/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, '<addr>'],
  [/\[?[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\]?/gi, '<addr>'],
  [/\b[\w.-]+\.(?:csv|tsv|json|nii|gz|dcm|png|jpe?g|onnx|key|txt|parquet|h5|npy|xlsx?)\b/gi, '<file>'],
  [/\b[\w-]+(?:\.[\w-]+)*\.(?:local|lan|internal|intra|corp|home|localdomain)\b/gi, '<host>'],
];

export function redact(text: string): string {
  let out = text;
  const host = hostname();
  if (host.length >= 3) out = out.split(host).join('<host>');
  for (const [re, sub] of RULES) out = out.replace(re, sub);
  return out.length > MAX ? `${out.slice(0, MAX - 1)}…` : out;
}

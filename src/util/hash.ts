import { createHash } from 'node:crypto';

/** sha256 of bytes (or a UTF-8 string) as lowercase hex: the one digest used for models, checkpoints, audit entries and manifests. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * PNG reading and writing with node:zlib only (no dependency).
 *   readPng(file)        -> { width, height, channels, bitDepth, data: Float32Array (row-major, channel-interleaved) }
 *   readPngVolume(file)  -> Volume [w, h, 1] of the grey value (RGB -> luma 0.299/0.587/0.114; alpha dropped), spacing from pHYs or 1 mm
 *   writePng(file, w, h, gray: Uint8Array | Uint16Array)   grey 8- or 16-bit
 * Supports bit depths 8 and 16 (and 1/2/4 for grey and palette), colour types 0/2/3/4/6, non-interlaced. CRCs are checked, so a
 * corrupt or truncated file is an error naming the file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { deflateSync, inflateSync, crc32 as zcrc32 } from 'node:zlib';
import { CohortError } from '../util/errors.ts';
import { makeVolume, type Vec3, type Volume } from './volume.ts';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

// node >= 20.15 / 22.2 has zlib.crc32; fall back to a table otherwise
const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf: Uint8Array): number {
  if (typeof zcrc32 === 'function') return zcrc32(buf) >>> 0;
  let c = -1;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

export interface PngImage {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly bitDepth: number;
  readonly data: Float32Array;
  /** pixel size in mm from pHYs (unit metre), if present */
  readonly pixelMm?: [number, number];
}

export function readPng(file: string): PngImage {
  let buf: Buffer;
  try { buf = readFileSync(file); } catch (e) { throw new CohortError('DATA_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`, 'check the path'); }
  const bad = (what: string): CohortError => new CohortError('CORRUPT_FILE', `${file}: ${what}`, 'the PNG is damaged or truncated; export it again');
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) throw new CohortError('NOT_PNG', `${file} is not a PNG file`, 'pass a .png image');
  let off = 8, width = 0, height = 0, depth = 0, ctype = 0, interlace = 0, palette: Buffer | undefined, pixelMm: [number, number] | undefined;
  const idat: Buffer[] = [];
  let ended = false;
  while (off < buf.length) {
    if (off + 12 > buf.length) throw bad('truncated chunk header');
    const len = buf.readUInt32BE(off), type = buf.toString('latin1', off + 4, off + 8);
    if (off + 12 + len > buf.length) throw bad(`chunk ${type} is truncated`);
    const body = buf.subarray(off + 8, off + 8 + len);
    if (crc32(buf.subarray(off + 4, off + 8 + len)) !== buf.readUInt32BE(off + 8 + len)) throw bad(`CRC mismatch in chunk ${type}`);
    if (type === 'IHDR') { width = body.readUInt32BE(0); height = body.readUInt32BE(4); depth = body[8]; ctype = body[9]; interlace = body[12]; }
    else if (type === 'PLTE') palette = body;
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'pHYs' && body[8] === 1) pixelMm = [1000 / body.readUInt32BE(0), 1000 / body.readUInt32BE(4)];
    else if (type === 'IEND') { ended = true; break; }
    off += 12 + len;
  }
  if (!ended) throw bad('no IEND chunk (truncated)');
  const channels = CHANNELS[ctype];
  if (!width || !height || !channels) throw bad('invalid IHDR');
  if (interlace) throw new CohortError('UNSUPPORTED_PNG', `${file}: interlaced PNG is not supported`, 'save it without interlacing');
  let raw: Buffer;
  try { raw = inflateSync(Buffer.concat(idat)); } catch (e) { throw bad(`compressed data is corrupt (${(e as Error).message})`); }
  const bpp = Math.max(1, (channels * depth) >> 3);
  const stride = Math.ceil((width * channels * depth) / 8);
  if (raw.length < height * (stride + 1)) throw bad('image data is truncated');
  const pixels = unfilter(raw, height, stride, bpp, bad);
  const samples = unpack(pixels, width, height, channels, depth, stride);
  const data = ctype === 3 ? expandPalette(samples, palette, bad) : samples;
  return { width, height, channels: ctype === 3 ? 3 : channels, bitDepth: depth, data, pixelMm };
}

function unfilter(raw: Buffer, height: number, stride: number, bpp: number, bad: (w: string) => CohortError): Uint8Array {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1, dst = y * stride, prev = dst - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[dst + x - bpp] : 0, b = y > 0 ? out[prev + x] : 0, c = x >= bpp && y > 0 ? out[prev + x - bpp] : 0;
      const r = raw[src + x];
      let v: number;
      switch (f) {
        case 0: v = r; break;
        case 1: v = r + a; break;
        case 2: v = r + b; break;
        case 3: v = r + ((a + b) >> 1); break;
        case 4: { const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c); v = r + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c); break; }
        default: throw bad(`unknown filter type ${f} in row ${y}`);
      }
      out[dst + x] = v & 0xff;
    }
  }
  return out;
}

function unpack(p: Uint8Array, w: number, h: number, ch: number, depth: number, stride: number): Float32Array {
  const out = new Float32Array(w * h * ch);
  for (let y = 0; y < h; y++) for (let i = 0; i < w * ch; i++) {
    const row = y * stride;
    out[y * w * ch + i] = depth === 16 ? (p[row + 2 * i] << 8) | p[row + 2 * i + 1]
      : depth === 8 ? p[row + i]
        : (p[row + ((i * depth) >> 3)] >> (8 - depth - ((i * depth) & 7))) & ((1 << depth) - 1);
  }
  return out;
}

function expandPalette(idx: Float32Array, palette: Buffer | undefined, bad: (w: string) => CohortError): Float32Array {
  if (!palette) throw bad('palette image without PLTE chunk');
  const out = new Float32Array(idx.length * 3);
  idx.forEach((k, i) => { for (let c = 0; c < 3; c++) out[3 * i + c] = palette[3 * k + c] ?? 0; });
  return out;
}

export function readPngVolume(file: string): Volume {
  const img = readPng(file);
  const n = img.width * img.height;
  const grey = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const d = img.data, c = img.channels;
    grey[i] = c >= 3 ? 0.299 * d[i * c] + 0.587 * d[i * c + 1] + 0.114 * d[i * c + 2] : d[i * c];
  }
  const spacing: Vec3 = [img.pixelMm?.[0] ?? 1, img.pixelMm?.[1] ?? 1, 1];
  return { ...makeVolume([img.width, img.height, 1], spacing, grey), dtype: `uint${img.bitDepth}` };
}

function chunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

/** Write a grey image (8-bit for Uint8Array, 16-bit for Uint16Array), row-major. */
export function encodePng(width: number, height: number, grey: Uint8Array | Uint16Array): Buffer {
  const depth = grey instanceof Uint16Array ? 16 : 8;
  const stride = (width * depth) / 8;
  const raw = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const v = grey[y * width + x], o = y * (stride + 1) + 1;
    if (depth === 16) raw.writeUInt16BE(v, o + 2 * x); else raw[o + x] = v;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4); ihdr[8] = depth; ihdr[9] = 0;
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

export function writePng(file: string, width: number, height: number, grey: Uint8Array | Uint16Array): void {
  writeFileSync(file, encodePng(width, height, grey));
}

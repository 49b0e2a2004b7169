/**
 * Compressed DICOM pixel data -> the little-endian stored values an uncompressed file would hold, with maintained codecs:
 *   JPEG baseline / extended 8-bit (1.2.840.10008.1.2.4.50, .51)    @cornerstonejs/codec-libjpeg-turbo-8bit (WASM)
 *   JPEG lossless (.57, .70)                                           jpeg-lossless-decoder-js
 *   JPEG-LS lossless / near-lossless (.80, .81)                        @cornerstonejs/codec-charls (WASM)
 *   JPEG 2000 lossless / lossy (.90, .91)                              @cornerstonejs/codec-openjpeg (WASM)
 *   RLE lossless (1.2.840.10008.1.2.5)                                 PS3.5 Annex G, here (a byte-wise PackBits variant)
 * The WASM modules are compiled synchronously on first use (the readers are synchronous) and cached; an uncompressed series
 * never loads them. test/unit/data-dicom-codecs.test.ts checks every codec against the uncompressed twin of the same image
 * (twins made by dcmtk and GDCM: scripts/fixtures/dicom-compressed.sh).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Decoder as JpegLosslessDecoder } from 'jpeg-lossless-decoder-js';

const require = createRequire(import.meta.url);

export const TRANSFER_SYNTAX_NAMES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'implicit VR little endian',
  '1.2.840.10008.1.2.1': 'explicit VR little endian',
  '1.2.840.10008.1.2.1.99': 'deflated explicit VR little endian',
  '1.2.840.10008.1.2.2': 'explicit VR big endian',
  '1.2.840.10008.1.2.4.50': 'JPEG baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG extended',
  '1.2.840.10008.1.2.4.57': 'JPEG lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE lossless',
};

type Codec = 'jpeg8' | 'jpeg-lossless' | 'jpeg-ls' | 'j2k' | 'rle';
const CODEC_OF: Readonly<Record<string, Codec>> = {
  '1.2.840.10008.1.2.4.50': 'jpeg8', '1.2.840.10008.1.2.4.51': 'jpeg8',
  '1.2.840.10008.1.2.4.57': 'jpeg-lossless', '1.2.840.10008.1.2.4.70': 'jpeg-lossless',
  '1.2.840.10008.1.2.4.80': 'jpeg-ls', '1.2.840.10008.1.2.4.81': 'jpeg-ls',
  '1.2.840.10008.1.2.4.90': 'j2k', '1.2.840.10008.1.2.4.91': 'j2k',
  '1.2.840.10008.1.2.5': 'rle',
};

export const isCompressedSyntax = (uid: string): boolean => uid in CODEC_OF;

export interface FrameInfo { readonly rows: number; readonly columns: number; readonly bitsAllocated: number; readonly samplesPerPixel: number }

/** An emscripten decoder object of the cornerstone codecs (JpegLSDecoder, J2KDecoder, JPEGDecoder). */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  delete(): void;
}
type WasmModule = Record<string, new () => WasmDecoder>;

const modules = new Map<string, WasmModule>();

// WebAssembly as Node provides it (the project's lib settings carry no DOM/WebAssembly typings)
interface WasmApi { Module: new (bytes: Uint8Array) => object; Instance: new (module: object, imports: object) => { exports: object } }
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Instantiate an emscripten MODULARIZE build synchronously: compile the .wasm here and hand the instance to its loader. */
function wasmModule(pkg: string): WasmModule {
  let m = modules.get(pkg);
  if (m) return m;
  const factory = require(`${pkg}/decodewasmjs`) as (arg: Record<string, unknown>) => Promise<unknown>;
  const bytes = readFileSync(require.resolve(`${pkg}/decodewasm`));
  const arg: Record<string, unknown> = {
    instantiateWasm(imports: object, done: (instance: object, module: object) => void) {
      const mod = new WA.Module(bytes);
      const inst = new WA.Instance(mod, imports);
      done(inst, mod);
      return inst.exports;
    },
    print: () => undefined, printErr: () => undefined,
  };
  void factory(arg).catch(() => undefined);
  m = arg as unknown as WasmModule;
  modules.set(pkg, m);
  return m;
}

function runWasm(pkg: string, cls: string, frame: Uint8Array, info: FrameInfo): Uint8Array {
  const Ctor = wasmModule(pkg)[cls];
  if (typeof Ctor !== 'function') throw new Error(`${pkg} did not initialise (${cls} missing)`);
  const d = new Ctor();
  try {
    d.getEncodedBuffer(frame.length).set(frame);
    d.decode();
    const fi = d.getFrameInfo();
    if (fi.width !== info.columns || fi.height !== info.rows) throw new Error(`the codestream is ${fi.width}x${fi.height}, the header says ${info.columns}x${info.rows}`);
    return d.getDecodedBuffer().slice(); // copy out of the WASM heap before delete()
  } finally {
    d.delete();
  }
}

/** RLE lossless (PS3.5 Annex G): a 64-byte header of segment offsets; one segment per byte plane, most significant first. */
export function decodeRle(frame: Uint8Array, info: FrameInfo): Uint8Array {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  const bytesPerSample = info.bitsAllocated / 8;
  const pixels = info.rows * info.columns;
  if (segments !== bytesPerSample * info.samplesPerPixel) throw new Error(`RLE header lists ${segments} segments, ${bytesPerSample * info.samplesPerPixel} expected`);
  const out = new Uint8Array(pixels * bytesPerSample * info.samplesPerPixel);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.length;
    const sample = Math.floor(s / bytesPerSample), byteInSample = bytesPerSample - 1 - (s % bytesPerSample); // little-endian output
    const stride = bytesPerSample * info.samplesPerPixel;
    let o = 0, i = start;
    const put = (b: number): void => { if (o < pixels) out[o * stride + sample * bytesPerSample + byteInSample] = b; o++; };
    while (i < end && o < pixels) {
      const n = (frame[i++] << 24) >> 24; // signed header byte
      if (n >= 0) { for (let k = 0; k <= n && i < end; k++) put(frame[i++]); }
      else if (n !== -128) { const b = frame[i++]; for (let k = 0; k < 1 - n; k++) put(b); }
    }
    if (o < pixels) throw new Error(`RLE segment ${s + 1} ends after ${o} of ${pixels} pixels`);
  }
  return out;
}

/**
 * Decode one compressed frame to the bytes an uncompressed little-endian file would hold for it (stored values; the caller applies
 * PixelRepresentation, rescale and photometric handling as for uncompressed data). Throws an Error with the codec's reason.
 */
export function decodeFrame(transferSyntax: string, frame: Uint8Array, info: FrameInfo): Uint8Array {
  const codec = CODEC_OF[transferSyntax];
  switch (codec) {
    case 'rle': return decodeRle(frame, info);
    case 'jpeg-ls': return runWasm('@cornerstonejs/codec-charls', 'JpegLSDecoder', frame, info);
    case 'j2k': return runWasm('@cornerstonejs/codec-openjpeg', 'J2KDecoder', frame, info);
    case 'jpeg8':
      if (info.bitsAllocated !== 8) throw new Error(`JPEG baseline/extended with ${info.bitsAllocated}-bit samples is not decoded (8-bit only)`);
      return runWasm('@cornerstonejs/codec-libjpeg-turbo-8bit', 'JPEGDecoder', frame, info);
    case 'jpeg-lossless': {
      const bytes = info.bitsAllocated <= 8 ? 1 : 2;
      const copy = frame.slice();
      const px = new JpegLosslessDecoder().decode(copy.buffer, 0, copy.length, bytes) as Uint8Array | Uint16Array;
      const out = new Uint8Array(px.buffer, px.byteOffset, px.byteLength);
      return out.slice();
    }
    default:
      throw new Error(`transfer syntax ${transferSyntax} has no decoder`);
  }
}

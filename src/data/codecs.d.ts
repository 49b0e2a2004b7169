// Minimal typings for jpeg-lossless-decoder-js (its package names a .d.ts it does not ship).
declare module 'jpeg-lossless-decoder-js' {
  export class Decoder {
    constructor(buffer?: ArrayBuffer, numBytes?: number);
    decode(buffer: ArrayBufferLike, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array;
  }
}

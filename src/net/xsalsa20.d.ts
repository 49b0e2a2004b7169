// Types for the xsalsa20 stream cipher that @libp2p/pnet uses (the package ships none). Used by the pnet slicing test.
declare module 'xsalsa20' {
  interface XSalsa20 {
    update(input: Uint8Array, output?: Uint8Array): Uint8Array;
    finalize(): void;
  }
  function xsalsa20(nonce: Uint8Array, key: Uint8Array): XSalsa20;
  export default xsalsa20;
}

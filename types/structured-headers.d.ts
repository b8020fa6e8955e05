// structured-headers publishes its types only through package.json "exports", which this project's
// CommonJS "node" module resolution does not read; this points the bare import at them.
declare module 'structured-headers' {
  export * from 'structured-headers/dist/index';
}

// The library's types name the DOM's BufferSource, which a Node-only lib setting does not declare.
type BufferSource = ArrayBufferView | ArrayBuffer;

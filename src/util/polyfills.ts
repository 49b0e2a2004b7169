// Node 20 lacks Promise.withResolvers, which libp2p 3 uses (node.stop() throws without it).
// Import this module before anything that imports libp2p.
interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}
type PromiseCtorWithResolvers = PromiseConstructor & { withResolvers?: <T>() => Resolvers<T> };

const P = Promise as PromiseCtorWithResolvers;
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = function withResolvers<T>(): Resolvers<T> {
    let resolve!: Resolvers<T>['resolve'];
    let reject!: Resolvers<T>['reject'];
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
export {};

/**
 * Installs `Promise.withResolvers` (ES2024: returns `{ promise, resolve, reject }`; ECMAScript
 * 2024 §27.2.4.8, https://tc39.es/ecma262/#sec-promise.withResolvers) when the runtime lacks it:
 * Node 20 does, and `aws-local-stepfunctions` calls it (the library declares Node >= 22 for that
 * alone; TOOLCHAIN.md). Call it before loading or running that library. Idempotent; a native
 * implementation is left as it is. Throws nothing.
 */
export function ensurePromiseWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: () => unknown };
  P.withResolvers ??= function withResolvers<T>(this: PromiseConstructor) {
    let resolve!: (value: T) => void;
    let reject!: (reason: unknown) => void;
    const promise = new this<T>((a, b) => {
      resolve = a;
      reject = b;
    });
    return { promise, resolve, reject };
  };
}

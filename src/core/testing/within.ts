/** Rejects if `promise` takes longer than `ms`: for operations that must not wait for an agent timeout. */
export function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms).unref())]);
}

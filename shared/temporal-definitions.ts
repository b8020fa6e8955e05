import type { QueryDefinition, SignalDefinition, UpdateDefinition } from '@temporalio/common';

/**
 * Signal, query and update definitions as plain data (what `defineSignal` and its siblings return),
 * so the contracts that hold them load no Temporal package: the API, the client and the activities
 * import contracts without pulling in workflow code. The SDK reads only `type` and `name`.
 */
export const signal = <Args extends unknown[]>(name: string): SignalDefinition<Args> =>
  ({ type: 'signal', name }) as SignalDefinition<Args>;

export const query = <Result>(name: string): QueryDefinition<Result> =>
  ({ type: 'query', name }) as QueryDefinition<Result>;

export const update = <Result, Args extends unknown[]>(name: string): UpdateDefinition<Result, Args> =>
  ({ type: 'update', name }) as UpdateDefinition<Result, Args>;

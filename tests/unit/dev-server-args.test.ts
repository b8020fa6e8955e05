import { devServerDynamicConfigArgs, devServerSearchAttributeArgs } from '../../temporal/dev-server-args';

describe('devServerSearchAttributeArgs', () => {
  it('registers every custom search attribute with its CLI type name', () => {
    expect(devServerSearchAttributeArgs()).toEqual([
      '--search-attribute',
      'AgentId=Keyword',
      '--search-attribute',
      'AgentState=Keyword',
      '--search-attribute',
      'AgentType=Keyword',
      '--search-attribute',
      'TaskId=Keyword',
      '--search-attribute',
      'Workspace=Keyword',
      '--search-attribute',
      'Priority=Int',
      '--search-attribute',
      'RemoteInstance=Keyword',
      '--search-attribute',
      'Repository=Keyword',
    ]);
  });

  it('lets a burst of spawns ask the admission workflow at once (more than 10 updates in flight)', () => {
    expect(devServerDynamicConfigArgs()).toEqual(['--dynamic-config-value', 'history.maxInFlightUpdates=1000']);
  });
});

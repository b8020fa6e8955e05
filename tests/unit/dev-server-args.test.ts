import { devServerSearchAttributeArgs } from '../../temporal/dev-server-args';

describe('devServerSearchAttributeArgs', () => {
  it('registers every custom search attribute with its CLI type name', () => {
    expect(devServerSearchAttributeArgs()).toEqual([
      '--search-attribute', 'AgentState=Keyword',
      '--search-attribute', 'AgentType=Keyword',
      '--search-attribute', 'TaskId=Keyword',
      '--search-attribute', 'WorkspaceId=Keyword',
    ]);
  });
});

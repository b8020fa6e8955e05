import { failedChecks, parseProbeOutput } from '../../sandbox-runtime/probe';

const CONFINED = [
  'uid=10001',
  'root_writable=no',
  'workspace_writable=yes',
  'tmp_exec=no',
  'interfaces=lo,',
  'cap_eff=0000000000000000',
  'no_new_privs=1',
  'tool_sh=yes',
  'tool_git=yes',
  'tool_python3=yes',
  'tool_node=yes',
].join('\n');

describe('parseProbeOutput and failedChecks', () => {
  it('accepts a fully confined sandbox', () => {
    const findings = parseProbeOutput(CONFINED);
    expect(findings).not.toBeNull();
    expect(failedChecks(findings!)).toEqual([]);
  });

  it.each([
    ['uid=10001', 'uid=0', 'nonRoot'],
    ['root_writable=no', 'root_writable=yes', 'rootFilesystemReadOnly'],
    ['workspace_writable=yes', 'workspace_writable=no', 'workspaceWritable'],
    ['tmp_exec=no', 'tmp_exec=yes', 'tmpNoExec'],
    ['interfaces=lo,', 'interfaces=eth0,lo,', 'noNetwork'],
    ['cap_eff=0000000000000000', 'cap_eff=00000000a80425fb', 'noCapabilities'],
    ['no_new_privs=1', 'no_new_privs=0', 'noNewPrivileges'],
    ['tool_git=yes', 'tool_git=no', 'tool:git'],
  ])('flags %s turned into %s as %s', (from, to, failure) => {
    const findings = parseProbeOutput(CONFINED.replace(from, to));
    expect(failedChecks(findings!)).toEqual([failure]);
  });

  it('returns null when a required line is missing or garbled', () => {
    expect(parseProbeOutput(CONFINED.replace('no_new_privs=1', ''))).toBeNull();
    expect(parseProbeOutput(CONFINED.replace('uid=10001', 'uid=abc'))).toBeNull();
    expect(parseProbeOutput('')).toBeNull();
  });
});

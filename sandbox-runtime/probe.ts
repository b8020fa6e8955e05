import type { SandboxFindings } from '../workflows/sandbox-check/contract';

export const PROBE_TOOLS = ['sh', 'git', 'python3', 'node'] as const;
export const WORKSPACE_MARKER = 'sandbox-check.txt';

/**
 * A POSIX shell script run inside the sandbox. It inspects its own confinement and prints one
 * `key=value` line per finding, which parseProbeOutput turns into SandboxFindings.
 */
export const PROBE_SCRIPT = `
echo "uid=$(id -u)"
if touch /.probe 2>/dev/null; then echo "root_writable=yes"; else echo "root_writable=no"; fi
if echo ok > /workspace/${WORKSPACE_MARKER} 2>/dev/null
then echo "workspace_writable=yes"; else echo "workspace_writable=no"; fi
printf '#!/bin/sh\\necho ran\\n' > /tmp/probe.sh && chmod +x /tmp/probe.sh
if /tmp/probe.sh >/dev/null 2>&1; then echo "tmp_exec=yes"; else echo "tmp_exec=no"; fi
echo "interfaces=$(ls /sys/class/net | tr '\\n' ',')"
echo "cap_eff=$(grep CapEff /proc/self/status | awk '{print $2}')"
echo "no_new_privs=$(grep NoNewPrivs /proc/self/status | awk '{print $2}')"
for tool in ${PROBE_TOOLS.join(' ')}; do
  if command -v "$tool" >/dev/null 2>&1; then echo "tool_$tool=yes"; else echo "tool_$tool=no"; fi
done
`;

/** Turns the probe's output into findings; returns null when a line the verdict needs is missing. */
export function parseProbeOutput(output: string): SandboxFindings | null {
  const values = new Map<string, string>();
  for (const line of output.split('\n')) {
    const separator = line.indexOf('=');
    if (separator > 0) values.set(line.slice(0, separator).trim(), line.slice(separator + 1).trim());
  }
  const required = ['uid', 'root_writable', 'workspace_writable', 'tmp_exec', 'interfaces', 'cap_eff', 'no_new_privs'];
  if (required.some((key) => !values.has(key))) return null;
  const uid = Number(values.get('uid'));
  if (!Number.isInteger(uid)) return null;
  const interfaces = (values.get('interfaces') ?? '').split(',').filter(Boolean);
  return {
    uid,
    nonRoot: uid !== 0,
    rootFilesystemReadOnly: values.get('root_writable') === 'no',
    workspaceWritable: values.get('workspace_writable') === 'yes',
    tmpNoExec: values.get('tmp_exec') === 'no',
    noNetwork: interfaces.every((name) => name === 'lo'),
    noCapabilities: /^0+$/.test(values.get('cap_eff') ?? ''),
    noNewPrivileges: values.get('no_new_privs') === '1',
    toolsPresent: Object.fromEntries(PROBE_TOOLS.map((tool) => [tool, values.get(`tool_${tool}`) === 'yes'])),
  };
}

/** The names of the confinement properties that failed; empty means the sandbox is as hardened as required. */
export function failedChecks(findings: SandboxFindings): string[] {
  const flags: Array<[string, boolean]> = [
    ['nonRoot', findings.nonRoot],
    ['rootFilesystemReadOnly', findings.rootFilesystemReadOnly],
    ['workspaceWritable', findings.workspaceWritable],
    ['tmpNoExec', findings.tmpNoExec],
    ['noNetwork', findings.noNetwork],
    ['noCapabilities', findings.noCapabilities],
    ['noNewPrivileges', findings.noNewPrivileges],
    ...Object.entries(findings.toolsPresent).map(([tool, present]): [string, boolean] => [`tool:${tool}`, present]),
  ];
  return flags.filter(([, ok]) => !ok).map(([name]) => name);
}

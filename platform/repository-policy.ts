import { lookup } from 'node:dns/promises';
import { realpathSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { OutboundPolicy } from './outbound-http';

/**
 * Where an agent's repository may come from is the operator's decision: URL schemes and hosts, and
 * local folders (REPOSITORY_SCHEMES, REPOSITORY_HOSTS, REPOSITORY_LOCAL_ROOTS). Spawns from a federated
 * connection get no local paths unless that connection allows them. A refusal says which rule refused,
 * never whether a refused path exists. The spawn checks it (a clear 4xx before anything starts) and the
 * clone checks it again on the real paths and addresses, just before it runs.
 */
export interface RepositoryPolicySettings {
  REPOSITORY_SCHEMES: string;
  REPOSITORY_HOSTS: string;
  REPOSITORY_LOCAL_ROOTS: string;
}

export interface RepositoryPolicy {
  schemes: Set<string>;
  /** Host names (`example.com`) or suffixes (`*.example.com`); empty means any host. */
  hosts: string[];
  /** Absolute folders, resolved to their real paths. */
  localRoots: string[];
  /** Which addresses a remote repository may resolve to. */
  outbound: OutboundPolicy;
}

export type CloneSource =
  { kind: 'local'; path: string } | { kind: 'remote'; url: string; scheme: string; host: string; port: number };

export class RepositoryRefused extends Error {
  readonly code = 'repository_not_allowed';
}

const list = (value: string): string[] =>
  value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);

export const REPOSITORY_SCHEMES = ['https', 'http', 'ssh', 'git'] as const;

export function repositoryPolicy(settings: RepositoryPolicySettings, outbound: OutboundPolicy): RepositoryPolicy {
  return {
    schemes: new Set(list(settings.REPOSITORY_SCHEMES).map((scheme) => scheme.toLowerCase())),
    hosts: list(settings.REPOSITORY_HOSTS).map((host) => host.toLowerCase()),
    // A root that does not exist yet is kept as written (nothing under it can be cloned until it does).
    localRoots: list(settings.REPOSITORY_LOCAL_ROOTS).map((root) => {
      try {
        return realpathSync(path.resolve(root));
      } catch {
        return path.resolve(root);
      }
    }),
    outbound,
  };
}

const refuse = (reason: string): never => {
  throw new RepositoryRefused(`the repository is not allowed by this instance's policy: ${reason}`);
};

const under = (roots: string[], candidate: string): boolean =>
  roots.some((root) => candidate === root || candidate.startsWith(`${root}${path.sep}`));

function hostAllowed(hosts: string[], host: string): boolean {
  if (hosts.length === 0) return true;
  return hosts.some((allowed) => (allowed.startsWith('*.') ? host.endsWith(allowed.slice(1)) : host === allowed));
}

/** `git.example.com/org/repo` (FED-010's example: a host and a path, no scheme) means https. */
function withScheme(repository: string): string {
  return /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(:\d+)?\/\S+$/.test(repository)
    ? `https://${repository}`
    : repository;
}

/**
 * Decides where a repository may be cloned from. `allowLocal` is false for spawns from a connection that does not allow
 * local paths.
 */
export async function admitRepository(
  policy: RepositoryPolicy,
  repository: string,
  options: { allowLocal: boolean },
): Promise<CloneSource> {
  const source = withScheme(repository);
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(source)) {
    let url: URL;
    try {
      url = new URL(source);
    } catch {
      return refuse('not a valid URL');
    }
    const scheme = url.protocol.slice(0, -1).toLowerCase();
    if (!policy.schemes.has(scheme) || !(REPOSITORY_SCHEMES as readonly string[]).includes(scheme))
      return refuse(`the scheme ${scheme} is not allowed`);
    // Credentials would be stored with the agent and shown in its history. An ssh user (git@) is an address, not one.
    if (url.password || (url.username && scheme !== 'ssh')) return refuse('URLs with credentials are not allowed');
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    if (!hostAllowed(policy.hosts, host)) return refuse(`the host ${host} is not allowed`);
    const addresses = await lookup(host, { all: true }).catch(() => []);
    if (addresses.length > 0 && !addresses.some((address) => policy.outbound.permits(address.address)))
      return refuse(`the host ${host} is not an address this instance may reach`);
    const port =
      Number(url.port) || { https: 443, http: 80, ssh: 22, git: 9418 }[scheme as (typeof REPOSITORY_SCHEMES)[number]];
    return { kind: 'remote', url: url.toString(), scheme, host, port };
  }
  // "host:path" (scp-like), "ext::…", "fd::…" and other transports that are not a plain path.
  if (/^[^/]*:/.test(repository)) return refuse('use a URL with an allowed scheme, or an absolute path');
  if (!options.allowLocal) return refuse('local paths are not allowed for this spawn');
  if (policy.localRoots.length === 0) return refuse('local paths are not allowed (no REPOSITORY_LOCAL_ROOTS)');
  if (!path.isAbsolute(repository)) return refuse('a local path must be absolute');
  const lexical = path.resolve(repository);
  if (!under(policy.localRoots, lexical)) return refuse('the path is outside the allowed local roots');
  // A symlink must not lead out of the roots. A path that does not exist is left to the clone, whose error says only
  // "not available".
  const real = await realpath(lexical).catch(() => null);
  if (real !== null && !under(policy.localRoots, real)) return refuse('the path is outside the allowed local roots');
  return { kind: 'local', path: real ?? lexical };
}

import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, fetch } from 'undici';

/**
 * Every request this instance makes to an address someone else chose (a peer's identity, commands and
 * events to peers, later callbacks) goes through here: only public addresses unless the operator allows
 * more (OUTBOUND_ALLOWED_NETWORKS), checked on the address actually connected to (a name that resolves
 * to a private address is refused at connect time, so DNS rebinding gains nothing), no redirects, a
 * timeout, and a bounded body. Failures carry their detail for the logs; callers tell their own callers
 * only that the peer is unreachable.
 */
export const NETWORK_NAMES = ['loopback', 'private', 'link-local', 'metadata'] as const;
export type NetworkName = (typeof NETWORK_NAMES)[number];

type Subnet = [address: string, prefix: number, family: 'ipv4' | 'ipv6'];

const NAMED_NETWORKS: Record<NetworkName, Subnet[]> = {
  loopback: [
    ['127.0.0.0', 8, 'ipv4'],
    ['::1', 128, 'ipv6'],
  ],
  private: [
    ['10.0.0.0', 8, 'ipv4'],
    ['172.16.0.0', 12, 'ipv4'],
    ['192.168.0.0', 16, 'ipv4'],
    ['100.64.0.0', 10, 'ipv4'],
    ['fc00::', 7, 'ipv6'],
  ],
  'link-local': [
    ['169.254.0.0', 16, 'ipv4'],
    ['fe80::', 10, 'ipv6'],
  ],
  // Cloud metadata services: refused even where link-local or private addresses are allowed.
  metadata: [
    ['169.254.169.254', 32, 'ipv4'],
    ['169.254.170.2', 32, 'ipv4'],
    ['100.100.100.200', 32, 'ipv4'],
    ['fd00:ec2::254', 128, 'ipv6'],
  ],
};

/** Everything that is not a public unicast address. */
const NOT_PUBLIC: Subnet[] = [
  ...NAMED_NETWORKS.loopback,
  ...NAMED_NETWORKS.private,
  ...NAMED_NETWORKS['link-local'],
  ['0.0.0.0', 8, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.0.2.0', 24, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['198.51.100.0', 24, 'ipv4'],
  ['203.0.113.0', 24, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'],
  ['100::', 64, 'ipv6'],
  ['2001:db8::', 32, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
];

function blockListOf(subnets: Subnet[]): BlockList {
  const list = new BlockList();
  for (const [address, prefix, family] of subnets) list.addSubnet(address, prefix, family);
  return list;
}

const notPublic = blockListOf(NOT_PUBLIC);
const metadata = blockListOf(NAMED_NETWORKS.metadata);

/** `::ffff:10.0.0.1` is 10.0.0.1. */
function normalize(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return { address: mapped[1], family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

export class OutboundError extends Error {
  constructor(
    readonly reason: 'address_not_allowed' | 'unreachable' | 'redirect' | 'too_large' | 'bad_url',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Parses OUTBOUND_ALLOWED_NETWORKS: names (loopback, private, link-local, metadata) and CIDRs, comma-separated. */
export function parseAllowedNetworks(setting: string): Subnet[] {
  const subnets: Subnet[] = [];
  for (const entry of setting
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    if ((NETWORK_NAMES as readonly string[]).includes(entry)) {
      subnets.push(...NAMED_NETWORKS[entry as NetworkName]);
      continue;
    }
    const cidr = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(entry);
    const family = cidr?.[1] ? isIP(cidr[1]) : 0;
    const prefix = Number(cidr?.[2]);
    if (!cidr?.[1] || family === 0 || prefix > (family === 4 ? 32 : 128))
      throw new Error(`"${entry}" is neither ${NETWORK_NAMES.join(', ')} nor a CIDR such as 10.1.0.0/16`);
    subnets.push([cidr[1], prefix, family === 4 ? 'ipv4' : 'ipv6']);
  }
  return subnets;
}

export class OutboundPolicy {
  private readonly allowed: BlockList;
  private readonly allowsMetadata: boolean;
  /** The connection pool of requests under this policy: it checks each address it connects to. */
  readonly dispatcher: Agent;

  constructor(setting = '') {
    const subnets = parseAllowedNetworks(setting);
    this.allowed = blockListOf(subnets);
    this.allowsMetadata = setting.split(',').some((entry) => entry.trim() === 'metadata');
    this.dispatcher = new Agent({ connect: { lookup: this.checkedLookup } });
  }

  /**
   * Public unicast addresses always; the others only where the setting allows them (metadata services only by name).
   */
  permits(raw: string): boolean {
    const { address, family } = normalize(raw);
    if (metadata.check(address, family)) return this.allowsMetadata;
    return !notPublic.check(address, family) || this.allowed.check(address, family);
  }

  /** A DNS lookup that answers only with addresses this policy permits. */
  private readonly checkedLookup = (
    hostname: string,
    options: LookupOptions,
    callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) {
        callback(error, '');
        return;
      }
      const permitted = addresses.filter((entry) => this.permits(entry.address));
      if (permitted.length === 0) {
        callback(
          Object.assign(
            new OutboundError('address_not_allowed', `${hostname} resolves to no address this instance may call`),
            { code: 'EADDRNOTALLOWED' },
          ),
          '',
        );
        return;
      }
      if (options.all) callback(null, permitted);
      else callback(null, permitted[0]?.address ?? '', permitted[0]?.family);
    });
  };
}

export interface OutboundRequest {
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: Buffer;
  timeoutMs: number;
  maxBytes: number;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

async function readBounded(body: AsyncIterable<Uint8Array> | null, declared: number, limit: number): Promise<Buffer> {
  if (declared > limit) throw new OutboundError('too_large', `the answer is larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  if (!body) return Buffer.alloc(0);
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > limit) throw new OutboundError('too_large', `the answer is larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** One request under the policy. Throws OutboundError, whose message is for logs, not for callers' callers. */
export async function outboundRequest(
  policy: OutboundPolicy,
  url: string,
  request: OutboundRequest,
): Promise<OutboundResponse> {
  let target: URL;
  try {
    target = new URL(url);
  } catch (error) {
    throw new OutboundError('bad_url', 'not a URL', { cause: error });
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    throw new OutboundError('bad_url', `${target.protocol} is not http or https`);
  // Literal addresses never reach the lookup: check them here.
  const literal = target.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal) !== 0 && !policy.permits(literal))
    throw new OutboundError('address_not_allowed', `${literal} is not an address this instance may call`);
  try {
    const response = await fetch(target, {
      method: request.method,
      headers: request.headers ?? {},
      ...(request.body ? { body: request.body } : {}),
      redirect: 'manual',
      dispatcher: policy.dispatcher,
      signal: AbortSignal.timeout(request.timeoutMs),
    });
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      throw new OutboundError('redirect', `answered with a redirect (${response.status}); redirects are not followed`);
    }
    const body = await readBounded(
      response.body,
      Number(response.headers.get('content-length') ?? 0),
      request.maxBytes,
    );
    return { status: response.status, headers: Object.fromEntries(response.headers.entries()), body };
  } catch (error) {
    if (error instanceof OutboundError) throw error;
    const cause = (error as { cause?: unknown }).cause;
    if (cause instanceof OutboundError) throw cause;
    throw new OutboundError('unreachable', error instanceof Error ? error.message : String(error), { cause: error });
  }
}

import { OutboundPolicy, parseAllowedNetworks } from '../../platform/outbound-http';

/** Which addresses an instance may call, by its OUTBOUND_ALLOWED_NETWORKS setting. */
describe('the outbound address policy', () => {
  const cases: Array<[string, string, boolean]> = [
    ['', '93.184.216.34', true],
    ['', '2606:2800:220:1:248:1893:25c8:1946', true],
    ['', '127.0.0.1', false],
    ['', '127.1.2.3', false],
    ['', '::1', false],
    ['', '::ffff:127.0.0.1', false],
    ['', '10.0.0.5', false],
    ['', '172.16.3.4', false],
    ['', '192.168.1.1', false],
    ['', '100.64.0.1', false],
    ['', 'fd12:3456::1', false],
    ['', '169.254.1.1', false],
    ['', 'fe80::1', false],
    ['', '169.254.169.254', false],
    ['', '0.0.0.0', false],
    ['', '::', false],
    ['', '224.0.0.1', false],
    ['', '255.255.255.255', false],
    ['', '64:ff9b::a00:1', false],
    ['loopback', '127.0.0.1', true],
    ['loopback', '::1', true],
    ['loopback', '::ffff:127.0.0.1', true],
    ['loopback', '10.0.0.5', false],
    ['private', '10.0.0.5', true],
    ['private', '192.168.1.1', true],
    ['private', '127.0.0.1', false],
    ['link-local', '169.254.1.1', true],
    ['link-local,private', '169.254.169.254', false],
    ['link-local,private', '100.100.100.200', false],
    ['link-local,private', 'fd00:ec2::254', false],
    ['metadata', '169.254.169.254', true],
    ['10.1.0.0/16', '10.1.2.3', true],
    ['10.1.0.0/16', '10.2.0.1', false],
    [' loopback , 192.168.7.0/24 ', '192.168.7.9', true],
  ];
  it.each(cases)('with "%s", %s may be called: %s', (setting, address, expected) => {
    expect(new OutboundPolicy(setting).permits(address)).toBe(expected);
  });

  it.each(['everything', '10.0.0.0/33', 'loopback,nope', '1.2.3/8'])(
    'refuses the setting "%s" with a message',
    (setting) => {
      expect(() => parseAllowedNetworks(setting)).toThrow(/neither loopback, private, link-local, metadata nor a CIDR/);
    },
  );
});

import Docker from 'dockerode';

/** A dockerode client for DOCKER_HOST (unix:///path or tcp://host:port, validated by the config schema). */
export function createDockerClient(dockerHost: string): Docker {
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  const url = new URL(dockerHost);
  return new Docker({ host: url.hostname, port: Number(url.port), protocol: 'http' });
}

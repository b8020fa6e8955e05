import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports';

const run = promisify(execFile);

/**
 * OpenSSH's own server on loopback for tests (the test command installs Debian's openssh-server): key authentication
 * only, one generated host key and one client key. git reaches repositories on this machine through it as
 * `ssh://root@127.0.0.1:<port>/<absolute path>`.
 */
export class SshServer {
  private constructor(
    private readonly process: ChildProcess,
    readonly port: number,
    /** The client's private key, and a known_hosts file with the server's host key. */
    readonly clientKeyFile: string,
    readonly knownHostsFile: string,
  ) {}

  static async start(): Promise<SshServer> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sshd-'));
    const key = (name: string) => run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, name)]);
    await Promise.all([key('host_key'), key('client_key')]);
    await writeFile(path.join(dir, 'authorized_keys'), await readFile(path.join(dir, 'client_key.pub')), {
      mode: 0o600,
    });
    const port = await freePort();
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'LogLevel ERROR',
    ];
    await writeFile(path.join(dir, 'sshd_config'), `${config.join('\n')}\n`);
    await mkdir('/run/sshd', { recursive: true }); // sshd's privilege separation folder
    const sshd = spawn(process.env.SSHD_PATH ?? '/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], {
      stdio: 'ignore',
    });
    for (let tries = 0; ; tries++) {
      const open = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.end();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      });
      if (open) break;
      if (tries > 100 || sshd.exitCode !== null) throw new Error('sshd did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const hostKey = (await readFile(path.join(dir, 'host_key.pub'), 'utf8')).trim().split(' ').slice(0, 2).join(' ');
    const knownHosts = path.join(dir, 'known_hosts');
    await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKey}\n`);
    return new SshServer(sshd, port, path.join(dir, 'client_key'), knownHosts);
  }

  url(repository: string): string {
    return `ssh://root@127.0.0.1:${this.port}${repository}`;
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    this.process.kill('SIGTERM');
    await exited;
  }
}

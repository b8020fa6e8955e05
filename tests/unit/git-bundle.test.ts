import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidBundle, readBundleHeader, resultBundleOf } from '../../sandbox-runtime/git-bundle';
import { createRepository, git } from '../helpers/git-repo';

const base = 'a'.repeat(40);
const tip = 'b'.repeat(40);
const bundle = (header: string): Buffer => Buffer.concat([Buffer.from(`${header}\n\n`), Buffer.from('PACK\0\0\0\x02')]);

/** A result bundle's header, read before it is stored or served. */
describe('git bundle header', () => {
  it('reads the prerequisites and references of a v2 and a v3 bundle', () => {
    const v2 = readBundleHeader(bundle(`# v2 git bundle\n-${base} the base\n${tip} refs/heads/agent/x`));
    expect(v2).toEqual({ version: 2, prerequisites: [base], refs: new Map([['refs/heads/agent/x', tip]]) });
    const v3 = readBundleHeader(bundle(`# v3 git bundle\n@object-format=sha1\n${tip} refs/heads/agent/x`));
    expect(v3).toEqual({ version: 3, prerequisites: [], refs: new Map([['refs/heads/agent/x', tip]]) });
  });

  it.each([
    ['another format', bundle(`# v9 git bundle\n${tip} refs/heads/x`)],
    ['no end of header', Buffer.from(`# v2 git bundle\n${tip} refs/heads/x\n`)],
    ['a short object id', bundle(`# v2 git bundle\n${tip.slice(1)} refs/heads/x`)],
    ['a reference outside refs/', bundle(`# v2 git bundle\n${tip} HEAD`)],
    ['a reference twice', bundle(`# v2 git bundle\n${tip} refs/heads/x\n${base} refs/heads/x`)],
    ['SHA-256 objects', bundle(`# v3 git bundle\n@object-format=sha256\n${tip} refs/heads/x`)],
    ['a filtered bundle', bundle(`# v3 git bundle\n@filter=blob:none\n${tip} refs/heads/x`)],
    ['a capability in a v2 bundle', bundle(`# v2 git bundle\n@object-format=sha1\n${tip} refs/heads/x`)],
  ])('refuses %s', (_case, data) => {
    expect(() => readBundleHeader(data)).toThrow(InvalidBundle);
  });

  it("checks what the sandbox printed: git's own bundle of the result branch, at the commit collected", async () => {
    const repository = await createRepository();
    const base = await git(repository, 'rev-parse', 'HEAD');
    await git(repository, 'checkout', '-q', '-b', 'agent/x');
    await writeFile(path.join(repository, 'hello.txt'), 'hello\n');
    await git(repository, 'add', '-A');
    await git(repository, '-c', 'user.name=A', '-c', 'user.email=a@localhost', 'commit', '-q', '-m', 'result');
    const commitSha = await git(repository, 'rev-parse', 'HEAD');
    const file = path.join(repository, '..', `${path.basename(repository)}.bundle`);
    await git(repository, 'bundle', 'create', '--quiet', file, `${base}..refs/heads/agent/x`);
    const printed = `bundle\n${(await readFile(file)).toString('base64')}`;

    const bundle = resultBundleOf(printed, { branch: 'agent/x', commitSha });
    expect(bundle.kind === 'bundle' && bundle.header.prerequisites).toEqual([base]);
    expect(() => resultBundleOf(printed, { branch: 'agent/x', commitSha: base })).toThrow(InvalidBundle);
    expect(() => resultBundleOf(printed, { branch: 'agent/y', commitSha })).toThrow(InvalidBundle);
    expect(resultBundleOf('too_large 99999999', { branch: 'agent/x', commitSha })).toEqual({
      kind: 'too_large',
      sizeBytes: 99999999,
    });
    expect(() => resultBundleOf('fatal: something', { branch: 'agent/x', commitSha })).toThrow(InvalidBundle);
  });
});

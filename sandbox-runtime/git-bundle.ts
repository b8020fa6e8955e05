/**
 * The header of a git bundle (gitformat-bundle(5)), read without git: the bundle comes from an agent's sandbox (or a
 * peer), so it is checked before it is stored or served, and git never reads it on the host unchecked.
 */
export interface BundleHeader {
  version: 2 | 3;
  /** Commits the receiver must have already (the result's base). */
  prerequisites: string[];
  /** Reference name → object id. */
  refs: Map<string, string>;
}

/** The bundle is not a git bundle this instance accepts. */
export class InvalidBundle extends Error {
  override readonly name = 'InvalidBundle';
}

const OBJECT_ID = /^[0-9a-f]{40}$/;
/** A header longer than this is not one of ours: a result bundle names one branch and its base. */
const MAX_HEADER_BYTES = 64 * 1024;

/** Parses a bundle's header (its signature, capabilities, prerequisites and references) up to the pack. */
export function readBundleHeader(bundle: Buffer): BundleHeader {
  const end = bundle.subarray(0, MAX_HEADER_BYTES).indexOf('\n\n');
  if (end < 0) throw new InvalidBundle('no bundle header (or one longer than 64 KiB)');
  const [signature, ...lines] = bundle.subarray(0, end).toString('utf8').split('\n');
  const version = signature === '# v2 git bundle' ? 2 : signature === '# v3 git bundle' ? 3 : null;
  if (version === null) throw new InvalidBundle('not a git bundle (v2 or v3)');
  const prerequisites: string[] = [];
  const refs = new Map<string, string>();
  for (const line of lines) {
    if (line.startsWith('@')) {
      // v3 capabilities: only SHA-1 object ids, and no partial (filtered) bundles.
      if (version !== 3 || (line !== '@object-format=sha1' && !line.startsWith('@object-format=sha1 ')))
        throw new InvalidBundle(`unsupported bundle capability: ${line.slice(0, 80)}`);
      continue;
    }
    const prerequisite = line.startsWith('-');
    const [id = '', name = ''] = (prerequisite ? line.slice(1) : line).split(/ (.*)/s);
    if (!OBJECT_ID.test(id)) throw new InvalidBundle(`not an object id: ${id.slice(0, 80)}`);
    if (prerequisite) prerequisites.push(id);
    else if (!name.startsWith('refs/') || refs.has(name))
      throw new InvalidBundle(`bad reference: ${name.slice(0, 80)}`);
    else refs.set(name, id);
  }
  return { version, prerequisites, refs };
}

/** A result bundle larger than this is not stored: the branch is then fetched from the workspace's host. */
export const RESULT_BUNDLE_MAX_BYTES = 25 * 1024 * 1024;

/**
 * Runs in the sandbox (the agent controls the repository, so git never runs on the host there): writes the bundle of
 * `refs/heads/$2` from commit $1 to a private file, then prints "too_large <bytes>" when it is larger than $3 bytes,
 * else "bundle" and the bundle in base64 on the next line. Replace refs are ignored: they would rewrite history.
 */
export const RESULT_BUNDLE_SCRIPT = [
  'set -e',
  'export GIT_NO_REPLACE_OBJECTS=1',
  'f=$(mktemp)',
  'trap \'rm -f "$f"\' EXIT',
  'git -c core.hooksPath=/dev/null bundle create --quiet "$f" "$1..refs/heads/$2"',
  'size=$(stat -c %s "$f")',
  'if [ "$size" -gt "$3" ]; then echo "too_large $size"; exit 0; fi',
  'echo bundle',
  'base64 -w0 "$f"',
].join('\n');

/** What the sandbox's bundle script printed, checked: a bundle of exactly `branch` at `commitSha`. */
export function resultBundleOf(
  printed: string,
  expected: { branch: string; commitSha: string },
): { kind: 'bundle'; data: Buffer; header: BundleHeader } | { kind: 'too_large'; sizeBytes: number } {
  const [first = '', encoded = ''] = printed.split('\n');
  const tooLarge = /^too_large (\d+)$/.exec(first);
  if (tooLarge) return { kind: 'too_large', sizeBytes: Number(tooLarge[1]) };
  if (first !== 'bundle') throw new InvalidBundle('the sandbox printed no bundle');
  const data = Buffer.from(encoded.trim(), 'base64');
  const header = readBundleHeader(data);
  const ref = `refs/heads/${expected.branch}`;
  if (header.refs.size !== 1 || header.refs.get(ref) !== expected.commitSha)
    throw new InvalidBundle(`the bundle does not hold ${ref} at ${expected.commitSha}`);
  return { kind: 'bundle', data, header };
}

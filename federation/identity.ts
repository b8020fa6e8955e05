import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { keyIdFor, rawPublicKey } from './signatures';

/**
 * This instance's federation identity: a stable instanceId, a name, its public base URL and its
 * Ed25519 signing keys. Created on first start under DATA_DIR/federation (private keys in files with
 * mode 0600, never in the database, never logged), or taken from INSTANCE_PRIVATE_KEY.
 * Rotation adds a new active key and keeps the previous one valid until its overlap window ends.
 */
export interface InstanceKey {
  keyId: string;
  publicKey: string;
  privateKey: KeyObject;
  createdAt: string;
  /** Set on a rotated-out key: peers accept it until then. */
  retiresAt: string | null;
}

export interface InstanceIdentity {
  instanceId: string;
  name: string;
  baseUrl: string;
  /** The active (signing) key first. */
  keys: InstanceKey[];
}

export interface PublicKeyInfo {
  keyId: string;
  algorithm: 'ed25519';
  publicKey: string;
  status: 'active' | 'retiring';
  notAfter: string | null;
}

export interface PublicIdentity {
  instanceId: string;
  name: string;
  baseUrl: string;
  keys: PublicKeyInfo[];
}

interface StoredIdentity {
  instanceId: string;
  keys: Array<{ keyId: string; createdAt: string; retiresAt: string | null }>;
}

export interface IdentitySettings {
  dataDir: string;
  name: string;
  baseUrl: string;
  /** PKCS#8 PEM; when set, it is the only key and nothing is written. */
  privateKeyPem?: string;
}

const folder = (dataDir: string): string => path.join(dataDir, 'federation');
const keyFile = (dataDir: string, keyId: string): string => path.join(folder(dataDir), 'keys', `${keyId}.pem`);

function writeAtomically(file: string, content: string, mode: number): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  renameSync(temporary, file);
}

function newKey(dataDir: string): { keyId: string; createdAt: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdFor(rawPublicKey(createPublicKey(privateKey)));
  writeAtomically(keyFile(dataDir, keyId), privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
  return { keyId, createdAt: new Date().toISOString() };
}

function toKey(privateKey: KeyObject, createdAt: string, retiresAt: string | null): InstanceKey {
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  return { keyId: keyIdFor(publicKey), publicKey, privateKey, createdAt, retiresAt };
}

const stateFileOf = (dataDir: string): string => path.join(folder(dataDir), 'instance.json');

/**
 * Creates the state file only if none exists: the API and the worker may start together on a fresh
 * data folder, and both must end up with the same identity (a hard link fails when the name exists).
 */
function createExclusively(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.new`;
  writeFileSync(temporary, content, { mode: 0o600 });
  try {
    linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    rmSync(temporary, { force: true });
  }
}

export function loadOrCreateIdentity(settings: IdentitySettings): InstanceIdentity {
  const stateFile = stateFileOf(settings.dataDir);
  if (!existsSync(stateFile)) {
    const created: StoredIdentity = {
      instanceId: randomUUID(),
      keys: settings.privateKeyPem ? [] : [{ ...newKey(settings.dataDir), retiresAt: null }],
    };
    createExclusively(stateFile, JSON.stringify(created, null, 2));
  }
  const stored = JSON.parse(readFileSync(stateFile, 'utf8')) as StoredIdentity;
  const keys = settings.privateKeyPem
    ? [toKey(createPrivateKey(settings.privateKeyPem), new Date(0).toISOString(), null)]
    : stored.keys
        .filter((key) => key.retiresAt === null || Date.parse(key.retiresAt) > Date.now())
        .map((key) =>
          toKey(
            createPrivateKey(readFileSync(keyFile(settings.dataDir, key.keyId), 'utf8')),
            key.createdAt,
            key.retiresAt,
          ),
        );
  return { instanceId: stored.instanceId, name: settings.name, baseUrl: settings.baseUrl, keys };
}

/** Makes a new key the signing key; the previous active key stays valid for `overlapSeconds`. */
export function rotateKey(settings: IdentitySettings, overlapSeconds: number): InstanceIdentity {
  if (settings.privateKeyPem) throw new Error('the key comes from INSTANCE_PRIVATE_KEY; rotate it there');
  const stateFile = stateFileOf(settings.dataDir);
  const stored = JSON.parse(readFileSync(stateFile, 'utf8')) as StoredIdentity;
  const retiresAt = new Date(Date.now() + overlapSeconds * 1000).toISOString();
  const keys = [
    { ...newKey(settings.dataDir), retiresAt: null },
    ...stored.keys.map((key) => ({ ...key, retiresAt: key.retiresAt ?? retiresAt })),
  ];
  writeAtomically(stateFile, JSON.stringify({ ...stored, keys }, null, 2), 0o600);
  return loadOrCreateIdentity(settings);
}

export function publicIdentity(identity: InstanceIdentity): PublicIdentity {
  return {
    instanceId: identity.instanceId,
    name: identity.name,
    baseUrl: identity.baseUrl,
    keys: identity.keys.map((key) => ({
      keyId: key.keyId,
      algorithm: 'ed25519',
      publicKey: key.publicKey,
      status: key.retiresAt ? 'retiring' : 'active',
      notAfter: key.retiresAt,
    })),
  };
}

export function signingKey(identity: InstanceIdentity): InstanceKey {
  const key = identity.keys.find((candidate) => candidate.retiresAt === null);
  if (!key) throw new Error('this instance has no active signing key');
  return key;
}

/**
 * A process's view of its identity. The API and the worker share it through DATA_DIR: after a
 * rotation (in the API) every process signs with the new key, since the state file changed.
 */
export interface IdentityHolder {
  current(): InstanceIdentity;
  rotate(overlapSeconds: number): InstanceIdentity;
}

export function createIdentityHolder(settings: IdentitySettings): IdentityHolder {
  const stateFile = stateFileOf(settings.dataDir);
  const modified = (): number => statSync(stateFile, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  let identity = loadOrCreateIdentity(settings);
  let loadedAt = modified();
  return {
    current: () => {
      const changed = modified();
      if (changed !== loadedAt) {
        identity = loadOrCreateIdentity(settings);
        loadedAt = changed;
      }
      return identity;
    },
    rotate: (overlapSeconds) => {
      identity = rotateKey(settings, overlapSeconds);
      loadedAt = modified();
      return identity;
    },
  };
}

export function identitySettings(config: {
  DATA_DIR: string;
  INSTANCE_NAME: string;
  PUBLIC_URL: string;
  INSTANCE_PRIVATE_KEY?: string | undefined;
}): IdentitySettings {
  return {
    dataDir: config.DATA_DIR,
    name: config.INSTANCE_NAME,
    baseUrl: config.PUBLIC_URL,
    ...(config.INSTANCE_PRIVATE_KEY ? { privateKeyPem: config.INSTANCE_PRIVATE_KEY } : {}),
  };
}

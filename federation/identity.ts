import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
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

export function loadOrCreateIdentity(settings: IdentitySettings): InstanceIdentity {
  const stateFile = path.join(folder(settings.dataDir), 'instance.json');
  let stored: StoredIdentity;
  if (existsSync(stateFile)) {
    stored = JSON.parse(readFileSync(stateFile, 'utf8')) as StoredIdentity;
  } else {
    stored = { instanceId: randomUUID(), keys: settings.privateKeyPem ? [] : [{ ...newKey(settings.dataDir), retiresAt: null }] };
    writeAtomically(stateFile, JSON.stringify(stored, null, 2), 0o600);
  }
  const keys = settings.privateKeyPem
    ? [toKey(createPrivateKey(settings.privateKeyPem), new Date(0).toISOString(), null)]
    : stored.keys
        .filter((key) => key.retiresAt === null || Date.parse(key.retiresAt) > Date.now())
        .map((key) => toKey(createPrivateKey(readFileSync(keyFile(settings.dataDir, key.keyId), 'utf8')), key.createdAt, key.retiresAt));
  return { instanceId: stored.instanceId, name: settings.name, baseUrl: settings.baseUrl, keys };
}

/** Makes a new key the signing key; the previous active key stays valid for `overlapSeconds`. */
export function rotateKey(settings: IdentitySettings, overlapSeconds: number): InstanceIdentity {
  if (settings.privateKeyPem) throw new Error('the key comes from INSTANCE_PRIVATE_KEY; rotate it there');
  const stateFile = path.join(folder(settings.dataDir), 'instance.json');
  const stored = JSON.parse(readFileSync(stateFile, 'utf8')) as StoredIdentity;
  const retiresAt = new Date(Date.now() + overlapSeconds * 1000).toISOString();
  const keys = [{ ...newKey(settings.dataDir), retiresAt: null }, ...stored.keys.map((key) => ({ ...key, retiresAt: key.retiresAt ?? retiresAt }))];
  writeAtomically(stateFile, JSON.stringify({ ...stored, keys }, null, 2), 0o600);
  return loadOrCreateIdentity(settings);
}

export function publicIdentity(identity: InstanceIdentity): PublicIdentity {
  return {
    instanceId: identity.instanceId,
    name: identity.name,
    baseUrl: identity.baseUrl,
    keys: identity.keys.map((key) => ({ keyId: key.keyId, algorithm: 'ed25519', publicKey: key.publicKey, status: key.retiresAt ? 'retiring' : 'active', notAfter: key.retiresAt })),
  };
}

export function signingKey(identity: InstanceIdentity): InstanceKey {
  const key = identity.keys.find((candidate) => candidate.retiresAt === null);
  if (!key) throw new Error('this instance has no active signing key');
  return key;
}

/** The API process's view of its identity; rotation replaces it for every later signature. */
export interface IdentityHolder {
  current(): InstanceIdentity;
  rotate(overlapSeconds: number): InstanceIdentity;
}

export function createIdentityHolder(settings: IdentitySettings): IdentityHolder {
  let identity = loadOrCreateIdentity(settings);
  return {
    current: () => identity,
    rotate: (overlapSeconds) => (identity = rotateKey(settings, overlapSeconds)),
  };
}

export function identitySettings(config: { DATA_DIR: string; INSTANCE_NAME: string; PUBLIC_URL: string; INSTANCE_PRIVATE_KEY?: string | undefined }): IdentitySettings {
  return {
    dataDir: config.DATA_DIR,
    name: config.INSTANCE_NAME,
    baseUrl: config.PUBLIC_URL,
    ...(config.INSTANCE_PRIVATE_KEY ? { privateKeyPem: config.INSTANCE_PRIVATE_KEY } : {}),
  };
}

-- Who suspended a connection ("local" or "peer"): only that side may resume it.
ALTER TABLE "federation_connections" ADD COLUMN "suspended_by" TEXT;

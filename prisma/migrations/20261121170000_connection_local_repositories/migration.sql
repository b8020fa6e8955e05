-- AlterTable
ALTER TABLE "federation_connections" ADD COLUMN     "allow_local_repositories" BOOLEAN NOT NULL DEFAULT false;

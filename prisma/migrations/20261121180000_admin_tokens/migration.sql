-- AlterTable
ALTER TABLE "api_tokens" ADD COLUMN     "role" TEXT NOT NULL DEFAULT 'workspace',
ALTER COLUMN "workspace_id" DROP NOT NULL;


-- A workspace token acts in one workspace, an administrator token in none.
ALTER TABLE "api_tokens" ADD CONSTRAINT "api_tokens_role_workspace_check" CHECK (("role" = 'workspace' AND "workspace_id" IS NOT NULL) OR ("role" = 'admin' AND "workspace_id" IS NULL));

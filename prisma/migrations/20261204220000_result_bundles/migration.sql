-- The result branch as a git bundle (GET /agents/:id/result.bundle), what became of it, and of its push.
-- AlterTable
ALTER TABLE "agent_results" ADD COLUMN     "bundle_status" TEXT,
ADD COLUMN     "delivery" JSONB;

-- CreateTable
CREATE TABLE "agent_result_bundles" (
    "agent_id" TEXT NOT NULL,
    "commit_sha" TEXT NOT NULL,
    "prerequisites" TEXT[],
    "data" BYTEA NOT NULL,
    "size_bytes" INTEGER NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "agent_result_bundles_pkey" PRIMARY KEY ("agent_id")
);

-- AddForeignKey
ALTER TABLE "agent_result_bundles" ADD CONSTRAINT "agent_result_bundles_agent_id_fkey" FOREIGN KEY ("agent_id") REFERENCES "agents"("id") ON DELETE CASCADE ON UPDATE CASCADE;


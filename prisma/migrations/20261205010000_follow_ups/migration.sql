-- Follow-ups (POST /agents/:id/continue): the finished agent whose result a new agent starts from.
-- AlterTable
ALTER TABLE "agents" ADD COLUMN     "parent_agent_id" TEXT;

-- CreateIndex
CREATE INDEX "agents_parent_agent_id_idx" ON "agents"("parent_agent_id");

-- AddForeignKey
ALTER TABLE "agents" ADD CONSTRAINT "agents_parent_agent_id_fkey" FOREIGN KEY ("parent_agent_id") REFERENCES "agents"("id") ON DELETE SET NULL ON UPDATE CASCADE;


-- AlterTable
ALTER TABLE "tool_calls" DROP CONSTRAINT "tool_calls_pkey",
ADD CONSTRAINT "tool_calls_pkey" PRIMARY KEY ("agent_id", "id");

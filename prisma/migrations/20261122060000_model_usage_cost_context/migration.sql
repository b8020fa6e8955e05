-- AlterTable
ALTER TABLE "agents" ADD COLUMN     "cache_creation_input_tokens" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "cache_read_input_tokens" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "cleared_tool_results" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "context_cleared_at_turn" INTEGER,
ADD COLUMN     "context_cleared_through" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "context_clearings" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "cost_usd" DOUBLE PRECISION,
ADD COLUMN     "model_progress" JSONB,
ADD COLUMN     "prompt_chars" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "prompt_tokens" INTEGER NOT NULL DEFAULT 0;


-- AlterTable
ALTER TABLE "agents" ADD COLUMN     "origin_connection_id" TEXT,
ADD COLUMN     "origin_message_id" TEXT,
ADD COLUMN     "started_at" TIMESTAMP(3);

-- AlterTable
ALTER TABLE "federation_commands" ADD COLUMN     "attempts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "raw_reply" JSONB;

-- CreateTable
CREATE TABLE "federated_agents" (
    "agent_id" TEXT NOT NULL,
    "connection_id" TEXT NOT NULL,
    "spawn_message_id" TEXT NOT NULL,
    "remote_agent_id" TEXT,
    "progress" JSONB,
    "remote_started_at" TIMESTAMP(3),
    "last_contact_at" TIMESTAMP(3),
    "kill" JSONB,
    "note" TEXT,

    CONSTRAINT "federated_agents_pkey" PRIMARY KEY ("agent_id")
);

-- CreateTable
CREATE TABLE "federation_events" (
    "id" TEXT NOT NULL,
    "connection_id" TEXT,
    "event_id" TEXT,
    "agent_id" TEXT,
    "sequence" INTEGER,
    "state" TEXT,
    "status" TEXT NOT NULL,
    "error_code" TEXT,
    "error" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "federation_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "federated_agents_spawn_message_id_key" ON "federated_agents"("spawn_message_id");

-- CreateIndex
CREATE INDEX "federated_agents_connection_id_idx" ON "federated_agents"("connection_id");

-- CreateIndex
CREATE INDEX "federation_events_connection_id_created_at_idx" ON "federation_events"("connection_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "federation_events_connection_id_event_id_key" ON "federation_events"("connection_id", "event_id");

-- AddForeignKey
ALTER TABLE "federated_agents" ADD CONSTRAINT "federated_agents_agent_id_fkey" FOREIGN KEY ("agent_id") REFERENCES "agents"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "federated_agents" ADD CONSTRAINT "federated_agents_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "federation_connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;


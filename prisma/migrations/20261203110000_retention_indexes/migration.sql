-- CreateIndex
CREATE INDEX "agents_finished_at_idx" ON "agents"("finished_at");

-- CreateIndex
CREATE INDEX "federation_commands_created_at_idx" ON "federation_commands"("created_at");

-- CreateIndex
CREATE INDEX "federation_events_created_at_idx" ON "federation_events"("created_at");


-- CreateTable
CREATE TABLE "federation_connections" (
    "id" TEXT NOT NULL,
    "workspace_id" TEXT,
    "peer_instance_id" TEXT NOT NULL,
    "peer_name" TEXT NOT NULL,
    "peer_url" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "initiated_by" TEXT NOT NULL,
    "allowed_command_types" TEXT[],
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "federation_connections_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "federation_peer_keys" (
    "key_id" TEXT NOT NULL,
    "connection_id" TEXT NOT NULL,
    "public_key" TEXT NOT NULL,
    "not_after" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "federation_peer_keys_pkey" PRIMARY KEY ("key_id")
);

-- CreateTable
CREATE TABLE "federation_commands" (
    "id" TEXT NOT NULL,
    "direction" TEXT NOT NULL,
    "connection_id" TEXT,
    "message_id" TEXT,
    "command_type" TEXT,
    "body_hash" TEXT,
    "status" TEXT NOT NULL,
    "payload" JSONB,
    "reply" JSONB,
    "error_code" TEXT,
    "error" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completed_at" TIMESTAMP(3),
    "duration_ms" INTEGER,

    CONSTRAINT "federation_commands_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "federation_nonces" (
    "key_id" TEXT NOT NULL,
    "nonce" TEXT NOT NULL,
    "expires_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "federation_nonces_pkey" PRIMARY KEY ("key_id","nonce")
);

-- CreateIndex
CREATE UNIQUE INDEX "federation_connections_peer_instance_id_key" ON "federation_connections"("peer_instance_id");

-- CreateIndex
CREATE INDEX "federation_commands_connection_id_created_at_idx" ON "federation_commands"("connection_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "federation_commands_connection_id_direction_message_id_key" ON "federation_commands"("connection_id", "direction", "message_id");

-- CreateIndex
CREATE INDEX "federation_nonces_expires_at_idx" ON "federation_nonces"("expires_at");

-- AddForeignKey
ALTER TABLE "federation_connections" ADD CONSTRAINT "federation_connections_workspace_id_fkey" FOREIGN KEY ("workspace_id") REFERENCES "workspaces"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "federation_peer_keys" ADD CONSTRAINT "federation_peer_keys_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "federation_connections"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "federation_commands" ADD CONSTRAINT "federation_commands_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "federation_connections"("id") ON DELETE SET NULL ON UPDATE CASCADE;


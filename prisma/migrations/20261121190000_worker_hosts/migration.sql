-- CreateTable
CREATE TABLE "worker_hosts" (
    "host_id" TEXT NOT NULL,
    "task_queue" TEXT NOT NULL,
    "docker_up" BOOLEAN NOT NULL,
    "docker_error" TEXT,
    "reported_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "worker_hosts_pkey" PRIMARY KEY ("host_id")
);


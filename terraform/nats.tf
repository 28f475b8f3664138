################################################################################
# Optional: a three-node NATS JetStream cluster on ECS Fargate, storage on EFS
#
# The recommended production path is nats_url, an existing cluster on
# instances with local or EBS disks (or a managed service). This one is for
# getting started with a single terraform apply: see the README's trade-offs.
################################################################################

locals {
  nats_nodes = var.create_nats_cluster ? toset(["nats-0", "nats-1", "nats-2"]) : toset([])

  nats_namespace   = "${var.name}.nats.internal"
  nats_routes      = join(",", [for n in sort(tolist(local.nats_nodes)) : "nats://${n}.${local.nats_namespace}:6222"])
  nats_cluster_url = join(",", [for n in sort(tolist(local.nats_nodes)) : "nats://${n}.${local.nats_namespace}:4222"])
}

resource "aws_security_group" "nats" {
  count = var.create_nats_cluster ? 1 : 0

  name_prefix = "${var.name}-nats-"
  description = "danmaku NATS: clients from the tasks, routes between nodes, NFS to EFS"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-nats" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "nats_clients" {
  count = var.create_nats_cluster ? 1 : 0

  security_group_id            = aws_security_group.nats[0].id
  description                  = "danmaku tasks to NATS clients port"
  ip_protocol                  = "tcp"
  from_port                    = 4222
  to_port                      = 4222
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_ingress_rule" "nats_peers" {
  for_each = var.create_nats_cluster ? { routes = 6222, monitoring = 8222, nfs = 2049 } : {}

  security_group_id            = aws_security_group.nats[0].id
  description                  = "NATS nodes and their file system: ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.nats[0].id
}

resource "aws_vpc_security_group_egress_rule" "nats" {
  count = var.create_nats_cluster ? 1 : 0

  security_group_id = aws_security_group.nats[0].id
  description       = "routes, EFS, ECR and CloudWatch Logs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_efs_file_system" "nats" {
  count = var.create_nats_cluster ? 1 : 0

  creation_token   = "${var.name}-nats"
  encrypted        = true
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  tags = merge(var.tags, { Name = "${var.name}-nats" })
}

resource "aws_efs_mount_target" "nats" {
  for_each = var.create_nats_cluster ? toset(var.private_subnet_ids) : toset([])

  file_system_id  = aws_efs_file_system.nats[0].id
  subnet_id       = each.value
  security_groups = [aws_security_group.nats[0].id]
}

# One directory per node, owned by the user the access point maps every
# client to: a node's JetStream store survives its task being replaced.
resource "aws_efs_access_point" "nats" {
  for_each = local.nats_nodes

  file_system_id = aws_efs_file_system.nats[0].id

  posix_user {
    uid = 1000
    gid = 1000
  }

  root_directory {
    path = "/${each.key}"

    creation_info {
      owner_uid   = 1000
      owner_gid   = 1000
      permissions = "0750"
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_service_discovery_private_dns_namespace" "nats" {
  count = var.create_nats_cluster ? 1 : 0

  name        = local.nats_namespace
  description = "danmaku NATS nodes"
  vpc         = var.vpc_id

  tags = var.tags
}

resource "aws_service_discovery_service" "nats" {
  for_each = local.nats_nodes

  name = each.key

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.nats[0].id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "nats" {
  count = var.create_nats_cluster ? 1 : 0

  name              = "/ecs/${var.name}/nats"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

resource "aws_ecs_task_definition" "nats" {
  for_each = local.nats_nodes

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 2048
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "jetstream"

    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.nats[0].id
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = aws_efs_access_point.nats[each.key].id
      }
    }
  }

  container_definitions = jsonencode([
    {
      name      = "nats"
      image     = var.nats_image
      essential = true
      command = [
        "--name", each.key,
        "--jetstream", "--store_dir", "/data",
        "--cluster_name", var.name,
        "--cluster", "nats://0.0.0.0:6222",
        "--routes", local.nats_routes,
        "--http_port", "8222",
      ]
      portMappings = [
        { containerPort = 4222, protocol = "tcp", name = "client" },
        { containerPort = 6222, protocol = "tcp", name = "route" },
        { containerPort = 8222, protocol = "tcp", name = "monitor" },
      ]
      mountPoints = [
        { sourceVolume = "jetstream", containerPath = "/data", readOnly = false }
      ]
      stopTimeout = 60
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.nats[0].name
          awslogs-region        = local.region
          awslogs-stream-prefix = each.key
        }
      }
    }
  ])

  tags = var.tags
}

# One service per node, never two tasks of a node at once: they would share
# its store directory.
resource "aws_ecs_service" "nats" {
  for_each = local.nats_nodes

  name             = "${var.name}-${each.key}"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.nats[each.key].arn
  desired_count    = 1
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.nats[0].id]
    assign_public_ip = var.assign_public_ip
  }

  service_registries {
    registry_arn = aws_service_discovery_service.nats[each.key].arn
  }

  tags = var.tags

  depends_on = [aws_efs_mount_target.nats]
}

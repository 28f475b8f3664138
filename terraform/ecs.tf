################################################################################
# ECS on Fargate: one image, three roles (ingest, writer, origin)
################################################################################

locals {
  nats_url = var.create_nats_cluster ? local.nats_cluster_url : var.nats_url

  roles = {
    ingest = { cpu = var.ingest.cpu, memory = var.ingest.memory }
    writer = { cpu = var.writer.cpu, memory = var.writer.memory }
    origin = { cpu = var.origin.cpu, memory = var.origin.memory }
  }

  # Services behind the load balancer, autoscaled on CPU. The writer is not:
  # its work grows with rooms, not with viewers or posts.
  scaled_services = {
    ingest = var.ingest
    origin = var.origin
  }

  # Every flag has an environment twin: DANMAKU_<FLAG_IN_UPPER_SNAKE_CASE>.
  # Later maps win, so extra_environment cannot change the role's wiring.
  common_environment = {
    DANMAKU_NATS       = local.nats_url
    DANMAKU_LOG_FORMAT = "json"
  }
  wiring_environment = {
    DANMAKU_LISTEN = "0.0.0.0:${local.container_port}"
    DANMAKU_DATA   = local.data_dir
  }
  role_environment = {
    ingest = merge(local.common_environment, var.extra_environment, local.wiring_environment, {
      DANMAKU_ROLE = "ingest"
      # Posters reach ingest through the load balancer, which appends their
      # address to X-Forwarded-For: rate limits count per that address.
      DANMAKU_TRUST_PROXY_HOPS = "1"
      DANMAKU_ALLOW_ANONYMOUS  = tostring(var.allow_anonymous_posts)
      DANMAKU_CORS_ORIGINS     = join(",", var.cors_allowed_origins)
    })
    writer = merge(local.common_environment, var.extra_environment, local.wiring_environment, {
      DANMAKU_ROLE  = "writer"
      DANMAKU_STORE = local.store_url
    })
    origin = merge(local.common_environment, var.extra_environment, local.wiring_environment, {
      DANMAKU_ROLE  = "origin"
      DANMAKU_STORE = local.store_url
      DANMAKU_HOLD  = "${var.hold_seconds}s"
      # Only CloudFront reaches the origin, from a few shield and edge
      # addresses carrying every room's held reads: no per-client cap (the
      # global --max-held still bounds them).
      DANMAKU_TRUST_PROXY_HOPS    = "1"
      DANMAKU_MAX_HELD_PER_CLIENT = "0"
      DANMAKU_CORS_ORIGINS        = join(",", var.cors_allowed_origins)
    })
  }

  admin_secret = var.admin_token_secret_arn == null ? [] : [{ name = "DANMAKU_ADMIN_TOKEN", valueFrom = var.admin_token_secret_arn }]
  auth_secret  = var.auth_secret_arn == null ? [] : [{ name = "DANMAKU_AUTH_SECRET", valueFrom = var.auth_secret_arn }]
  role_secrets = {
    ingest = concat(local.admin_secret, local.auth_secret)
    writer = local.admin_secret
    origin = local.admin_secret
  }
  secret_arns = compact([var.admin_token_secret_arn, var.auth_secret_arn])
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.roles

  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

################################################################################
# IAM: one execution role, one task role per role (least privilege)
################################################################################

# The execution role is assumed by ECS itself (image pulls, logs, secrets);
# its trust policy carries no source conditions.
data "aws_iam_policy_document" "execution_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# Task roles: only tasks of this account may assume them.
data "aws_iam_policy_document" "tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  description        = "ECS pulls the danmaku image, writes its logs and reads its secrets"
  assume_role_policy = data.aws_iam_policy_document.execution_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  count = length(local.secret_arns) > 0 ? 1 : 0

  statement {
    sid       = "ReadServiceSecrets"
    actions   = ["secretsmanager:GetSecretValue", "ssm:GetParameters"]
    resources = local.secret_arns
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count = length(local.secret_arns) > 0 ? 1 : 0

  name   = "read-service-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets[0].json
}

# The application's own permissions. Ingest gets a role with no policy: it
# talks to NATS only.
resource "aws_iam_role" "task" {
  for_each = local.roles

  name_prefix        = "${var.name}-${each.key}-"
  description        = "danmaku ${each.key} tasks"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json

  tags = var.tags
}

# The writer creates objects (create-only PUT), reads one back after a 412 to
# compare it, and deletes on purge and redaction; only under the prefix.
# ListBucket makes S3 answer 404 rather than 403 for a missing key, which the
# store tells apart from a refused request.
data "aws_iam_policy_document" "writer_s3" {
  statement {
    sid       = "WriteObjectsUnderPrefix"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.this.arn}/${local.key_prefix}*"]
  }

  statement {
    sid       = "KnowMissingKeys"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }
}

resource "aws_iam_role_policy" "writer_s3" {
  name   = "store-write"
  role   = aws_iam_role.task["writer"].id
  policy = data.aws_iam_policy_document.writer_s3.json
}

# The origin only reads, on a ring miss.
data "aws_iam_policy_document" "origin_s3" {
  statement {
    sid       = "ReadObjectsUnderPrefix"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/${local.key_prefix}*"]
  }

  statement {
    sid       = "KnowMissingKeys"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }
}

resource "aws_iam_role_policy" "origin_s3" {
  name   = "store-read"
  role   = aws_iam_role.task["origin"].id
  policy = data.aws_iam_policy_document.origin_s3.json
}

################################################################################
# Tasks
################################################################################

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-tasks-"
  description = "danmaku tasks: HTTP from the load balancer and the admin networks"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-tasks" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "load balancer to the tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_admin" {
  for_each = toset(var.admin_cidr_blocks)

  security_group_id = aws_security_group.tasks.id
  description       = "operators to /admin, /metrics and /readyz"
  ip_protocol       = "tcp"
  from_port         = local.container_port
  to_port           = local.container_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "tasks" {
  security_group_id = aws_security_group.tasks.id
  description       = "NATS, S3, ECR, CloudWatch Logs, Secrets Manager"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_ecs_task_definition" "this" {
  for_each = local.roles

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Fargate ephemeral storage at the image's VOLUME /data (owned by the
  # image's non-root user), so the root file system can be read-only.
  volume {
    name = "data"
  }

  container_definitions = jsonencode([
    {
      name                   = local.container_name
      image                  = var.container_image
      essential              = true
      command                = ["serve"]
      readonlyRootFilesystem = true
      stopTimeout            = 30
      portMappings = [
        { containerPort = local.container_port, protocol = "tcp", name = "http" }
      ]
      environment = [for k, v in local.role_environment[each.key] : { name = k, value = v }]
      secrets     = local.role_secrets[each.key]
      mountPoints = [
        { sourceVolume = "data", containerPath = local.data_dir, readOnly = false }
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this[each.key].name
          awslogs-region        = local.region
          awslogs-stream-prefix = each.key
        }
      }
    }
  ])

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.nats_url != null && local.nats_url != ""
      error_message = "Set nats_url to an existing NATS JetStream cluster, or create_nats_cluster = true."
    }

    precondition {
      condition     = !(var.create_nats_cluster && var.nats_url != null)
      error_message = "Set either nats_url or create_nats_cluster, not both."
    }

    precondition {
      condition     = var.auth_secret_arn != null || var.allow_anonymous_posts
      error_message = "Ingest faces the internet: set auth_secret_arn so posts need signed tokens, or allow_anonymous_posts = true to take anonymous posts."
    }
  }
}

# Ingest and origin: behind the load balancer, autoscaled, desired count owned
# by the autoscaler after creation.
resource "aws_ecs_service" "this" {
  for_each = local.scaled_services

  name             = "${var.name}-${each.key}"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.this[each.key].arn
  desired_count    = each.value.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  health_check_grace_period_seconds  = 30
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this[each.key].arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener_rule.ingest, aws_lb_listener_rule.origin]
}

# The writer: no load balancer, no autoscaling.
resource "aws_ecs_service" "writer" {
  name             = "${var.name}-writer"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.this["writer"].arn
  desired_count    = var.writer.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags
}

resource "aws_appautoscaling_target" "this" {
  for_each = local.scaled_services

  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min_count
  max_capacity       = each.value.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each = local.scaled_services

  name               = "${var.name}-${each.key}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.cpu_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

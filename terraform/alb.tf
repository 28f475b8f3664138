################################################################################
# Application Load Balancer: one internet-facing ALB, two listeners
#
#   ingest listener (80, or 443 with a certificate), open to posters:
#     POST /v1/rooms/*/messages -> ingest tasks; everything else 404
#   origin listener (origin_listener_port), open to CloudFront only:
#     secret header + read paths -> origin tasks; everything else 403
#
# /admin is on neither: operators reach it on the tasks from admin_cidr_blocks.
################################################################################

data "aws_ec2_managed_prefix_list" "cloudfront" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "danmaku load balancer: ingest from posters, reads from CloudFront"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_ingest" {
  for_each = toset(var.ingest_allowed_cidr_blocks)

  security_group_id = aws_security_group.alb.id
  description       = "posters to the ingest listener"
  ip_protocol       = "tcp"
  from_port         = local.ingest_port
  to_port           = local.ingest_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_origin" {
  security_group_id = aws_security_group.alb.id
  description       = "CloudFront to the origin listener"
  ip_protocol       = "tcp"
  from_port         = var.origin_listener_port
  to_port           = var.origin_listener_port
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront.id
}

resource "aws_vpc_security_group_egress_rule" "alb_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "load balancer to the tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_lb" "this" {
  name               = substr("${var.name}-alb", 0, 32)
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.alb.id]
  subnets            = var.public_subnet_ids

  # Above the origin's hold (a held read is an idle connection until its
  # second seals) and above CloudFront's 30 s keep-alive to the origin.
  idle_timeout               = var.alb_idle_timeout
  drop_invalid_header_fields = true

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.alb_idle_timeout >= 2 * var.hold_seconds
      error_message = "alb_idle_timeout must be at least twice hold_seconds."
    }
  }
}

resource "aws_lb_target_group" "this" {
  for_each = toset(["ingest", "origin"])

  name        = substr("${var.name}-${each.key}", 0, 32)
  target_type = "ip"
  protocol    = "HTTP"
  port        = local.container_port
  vpc_id      = var.vpc_id

  # Long enough for held reads and in-flight posts to finish on scale-in.
  deregistration_delay = 30

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

resource "aws_lb_listener" "ingest" {
  load_balancer_arn = aws_lb.this.arn
  port              = local.ingest_port
  protocol          = local.alb_tls ? "HTTPS" : "HTTP"
  ssl_policy        = local.alb_tls ? "ELBSecurityPolicy-TLS13-1-2-2021-06" : null
  certificate_arn   = var.alb_certificate_arn

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      message_body = jsonencode({ code = "not_found", message = "this listener only takes POST /v1/rooms/{room}/messages" })
      status_code  = "404"
    }
  }

  tags = var.tags
}

resource "aws_lb_listener_rule" "ingest" {
  listener_arn = aws_lb_listener.ingest.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["ingest"].arn
  }

  condition {
    path_pattern {
      values = [local.ingest_path_pattern]
    }
  }

  tags = var.tags
}

resource "aws_lb_listener" "origin" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.origin_listener_port
  protocol          = local.alb_tls ? "HTTPS" : "HTTP"
  ssl_policy        = local.alb_tls ? "ELBSecurityPolicy-TLS13-1-2-2021-06" : null
  certificate_arn   = var.alb_certificate_arn

  # CloudFront caches neither 403 nor 404 (see custom_error_response).
  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      message_body = jsonencode({ code = "forbidden", message = "this listener only serves CloudFront" })
      status_code  = "403"
    }
  }

  tags = var.tags
}

resource "aws_lb_listener_rule" "origin" {
  listener_arn = aws_lb_listener.origin.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["origin"].arn
  }

  condition {
    http_header {
      http_header_name = local.origin_verify_header
      values           = [random_password.origin_verify.result]
    }
  }

  condition {
    path_pattern {
      values = [local.bucket_path_pattern, local.segment_path_pattern, local.head_path_pattern]
    }
  }

  tags = var.tags
}

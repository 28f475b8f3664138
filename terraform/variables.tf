################################################################################
# General
################################################################################

variable "name" {
  description = "Name prefix of every resource (S3 bucket prefix, CloudFront policies, ALB, ECS cluster and services). Keep it short: the ALB name is cut to 32 characters."
  type        = string
  default     = "danmaku"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,27}$", var.name))
    error_message = "The name must be 1-28 lower-case letters, digits or hyphens, starting with a letter or digit."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

################################################################################
# S3 store
################################################################################

variable "bucket_name" {
  description = "Name of the S3 bucket for buckets and segments. If null, a unique name starting with \"<name>-\" is generated."
  type        = string
  default     = null
}

variable "s3_prefix" {
  description = "Key prefix of every object in the bucket, without leading or trailing slash (\"\" for none). Object key = prefix + URL path without its leading slash; CloudFront reads the bucket with this prefix as its origin path."
  type        = string
  default     = ""

  validation {
    condition     = var.s3_prefix == "" || can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.s3_prefix))
    error_message = "The prefix must be empty or path segments of A-Z, a-z, 0-9, '_', '.' or '-' joined by '/', with no leading or trailing '/'."
  }
}

variable "object_expiration_days" {
  description = "Days after which S3 deletes per-second buckets and segments (one lifecycle rule on <prefix>/v1/rooms/). Replay and backfill reach no further back than this and the log retention."
  type        = number
  default     = 30

  validation {
    condition     = var.object_expiration_days >= 1 && floor(var.object_expiration_days) == var.object_expiration_days
    error_message = "The expiration must be a whole number of days, at least 1."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds objects. Keep false in production."
  type        = bool
  default     = false
}

################################################################################
# CloudFront
################################################################################

variable "aliases" {
  description = "Extra domain names (CNAMEs) of the read distribution, such as [\"danmaku-cdn.example.com\"]. Needs acm_certificate_arn."
  type        = list(string)
  default     = []
}

variable "acm_certificate_arn" {
  description = "ARN of an ACM certificate in us-east-1 covering the aliases. If null, the distribution uses its *.cloudfront.net certificate."
  type        = string
  default     = null
}

variable "price_class" {
  description = "CloudFront price class: PriceClass_All, PriceClass_200 or PriceClass_100. PriceClass_100 leaves out the Asian edges that Southeast Asian viewers need."
  type        = string
  default     = "PriceClass_All"

  validation {
    condition     = contains(["PriceClass_All", "PriceClass_200", "PriceClass_100"], var.price_class)
    error_message = "The price class must be PriceClass_All, PriceClass_200 or PriceClass_100."
  }
}

variable "cors_allowed_origins" {
  description = "Origins allowed to read buckets, segments and head from a browser (CORS, GET and HEAD only). [\"*\"] allows any page to embed the player."
  type        = list(string)
  default     = ["*"]

  validation {
    condition     = length(var.cors_allowed_origins) > 0
    error_message = "Give at least one origin, or [\"*\"]."
  }
}

variable "origin_shield_enabled" {
  description = "Route every CloudFront miss through Origin Shield, so the origin sees about one request per URL instead of one per regional edge cache. It is billed per request: see the cost section of the README."
  type        = bool
  default     = true
}

variable "origin_shield_region" {
  description = "AWS Region of Origin Shield. If null, the Region of the origin (this provider's Region); choose the nearest Origin Shield Region if that one has none."
  type        = string
  default     = null
}

variable "origin_read_timeout" {
  description = "Seconds CloudFront waits for the origin service to answer (1-60, or up to 180 after a quota increase). Must stay well above hold_seconds: a read of a second that has not sealed is held at the origin for up to hold_seconds."
  type        = number
  default     = 30

  validation {
    condition     = var.origin_read_timeout >= 1 && var.origin_read_timeout <= 180
    error_message = "The origin read timeout must be between 1 and 180 seconds."
  }
}

variable "error_caching_5xx_ttl" {
  description = "Seconds CloudFront caches a 500, 502, 503 or 504 that survived the failover to S3. Short, so a recovered origin is used at once, but above 0 so a failing origin is not hit by every viewer. 404 and 403 are never cached: a not-yet-sealed second must not hide behind a cached 404."
  type        = number
  default     = 1

  validation {
    condition     = var.error_caching_5xx_ttl >= 0 && var.error_caching_5xx_ttl <= 5
    error_message = "The 5xx error caching TTL must be between 0 and 5 seconds."
  }
}

variable "web_acl_id" {
  description = "ARN of an AWS WAF web ACL (scope CLOUDFRONT) to attach to the read distribution, or null for none."
  type        = string
  default     = null
}

################################################################################
# Network and load balancer
################################################################################

variable "vpc_id" {
  description = "ID of the VPC for the load balancer, the services and the optional NATS cluster."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets for the internet-facing Application Load Balancer, in at least two Availability Zones."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An Application Load Balancer needs subnets in at least two Availability Zones."
  }
}

variable "private_subnet_ids" {
  description = "Subnets for the ECS tasks (and the NATS file system). They need a route to ECR, CloudWatch Logs, S3 and Secrets Manager: a NAT gateway, VPC endpoints, or public subnets with assign_public_ip."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 1
    error_message = "Give at least one subnet for the tasks."
  }
}

variable "assign_public_ip" {
  description = "Give each task a public IP address. Only for tasks in public subnets without a NAT gateway (as in examples/complete); the security group still admits only the load balancer."
  type        = bool
  default     = false
}

variable "alb_certificate_arn" {
  description = "ARN of an ACM certificate (in this Region) for alb_domain_name. With it the ingest listener is HTTPS on 443 and CloudFront reaches the origin over TLS; without it both listeners are plain HTTP."
  type        = string
  default     = null
}

variable "alb_domain_name" {
  description = "DNS name that points at the load balancer and matches alb_certificate_arn, such as \"danmaku-api.example.com\". Required with alb_certificate_arn; you create the DNS record (the alb_dns_name and alb_zone_id outputs)."
  type        = string
  default     = null
}

variable "origin_listener_port" {
  description = "Port of the load balancer listener that only CloudFront reaches (its origin-facing prefix list, plus a secret header) and that forwards reads to the origin service. 80, 443 or 1024-65535."
  type        = number
  default     = 8080

  validation {
    condition     = contains([80, 443], var.origin_listener_port) || (var.origin_listener_port >= 1024 && var.origin_listener_port <= 65535)
    error_message = "CloudFront connects to custom origins on 80, 443 or 1024-65535 only."
  }
}

variable "ingest_allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to reach the ingest listener (POST /v1/rooms/{room}/messages)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "admin_cidr_blocks" {
  description = "IPv4 CIDR blocks (a VPN or bastion) allowed to reach the tasks directly on port 8080 for /admin, /metrics and /readyz. /admin is routed by neither CloudFront nor the load balancer."
  type        = list(string)
  default     = []
}

variable "alb_idle_timeout" {
  description = "Seconds the load balancer keeps an idle connection open. Must stay above hold_seconds (held reads) and above CloudFront's keep-alive to the origin (30 s here)."
  type        = number
  default     = 60

  validation {
    condition     = var.alb_idle_timeout >= 31 && var.alb_idle_timeout <= 4000
    error_message = "The idle timeout must be between 31 and 4000 seconds (above CloudFront's 30 s keep-alive)."
  }
}

################################################################################
# Services
################################################################################

variable "container_image" {
  description = "Image of the danmaku binary built from the repository's Dockerfile, such as \"123456789012.dkr.ecr.ap-southeast-1.amazonaws.com/danmaku:v1.0.0\". All three roles run it."
  type        = string
}

variable "cpu_architecture" {
  description = "CPU architecture of the Fargate tasks, X86_64 or ARM64; the image must be built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "The architecture must be X86_64 or ARM64."
  }
}

variable "ingest" {
  description = "Size of the ingest service: Fargate cpu units and memory (MiB) per task, tasks at start, autoscaling bounds and the average CPU percentage it keeps."
  type = object({
    cpu           = optional(number, 512)
    memory        = optional(number, 1024)
    desired_count = optional(number, 2)
    min_count     = optional(number, 2)
    max_count     = optional(number, 10)
    cpu_target    = optional(number, 60)
  })
  default = {}
}

variable "origin" {
  description = "Size of the origin service: Fargate cpu units and memory (MiB) per task, tasks at start, autoscaling bounds and the average CPU percentage it keeps."
  type = object({
    cpu           = optional(number, 1024)
    memory        = optional(number, 2048)
    desired_count = optional(number, 2)
    min_count     = optional(number, 2)
    max_count     = optional(number, 20)
    cpu_target    = optional(number, 50)
  })
  default = {}
}

variable "writer" {
  description = "Size of the writer service: Fargate cpu units and memory (MiB) per task and the number of tasks (not autoscaled; writers divide the rooms among themselves and take over from each other)."
  type = object({
    cpu           = optional(number, 1024)
    memory        = optional(number, 2048)
    desired_count = optional(number, 2)
  })
  default = {}
}

variable "hold_seconds" {
  description = "Longest the origin holds a read of a second that has not sealed yet (--hold). Equal to the binary's default; CloudFront's origin_read_timeout and the ALB idle timeout must stay well above it."
  type        = number
  default     = 3

  validation {
    condition     = var.hold_seconds >= 1 && var.hold_seconds <= 20 && floor(var.hold_seconds) == var.hold_seconds
    error_message = "The hold must be a whole number of seconds between 1 and 20."
  }
}

variable "extra_environment" {
  description = "More environment variables for every danmaku container, such as { DANMAKU_LOG_LEVEL = \"debug\", DANMAKU_POLL_MS = \"1000\" }. They cannot override the role, listen address, data directory, store, log or hold."
  type        = map(string)
  default     = {}
}

variable "admin_token_secret_arn" {
  description = "ARN of a Secrets Manager secret or SSM SecureString parameter holding the admin bearer token (DANMAKU_ADMIN_TOKEN), or null to run without /admin."
  type        = string
  default     = null
}

variable "auth_secret_arn" {
  description = "ARN of a Secrets Manager secret or SSM SecureString parameter holding the HS256 secret that signs posters' tokens (DANMAKU_AUTH_SECRET), given to ingest only; or null."
  type        = string
  default     = null
}

variable "allow_anonymous_posts" {
  description = "Let ingest take posts without a token (DANMAKU_ALLOW_ANONYMOUS): their user fields are only the poster's claim, and rate limits count per address. Without it, auth_secret_arn must be set."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the services' logs."
  type        = number
  default     = 30
}

variable "container_insights" {
  description = "Turn on CloudWatch Container Insights for the ECS cluster (per-task CPU, memory and network metrics, billed as custom metrics)."
  type        = bool
  default     = true
}

################################################################################
# NATS JetStream (the message log)
################################################################################

variable "nats_url" {
  description = "URL[,URL...] of an existing NATS JetStream cluster, such as \"nats://nats-0.internal:4222,nats://nats-1.internal:4222\": the recommended production path. Leave null only with create_nats_cluster."
  type        = string
  default     = null
}

variable "create_nats_cluster" {
  description = "Run a three-node NATS JetStream cluster on ECS Fargate with its storage on EFS, instead of nats_url. Convenient, but see the README for what it costs in latency and durability."
  type        = bool
  default     = false
}

variable "nats_image" {
  description = "NATS server image for create_nats_cluster."
  type        = string
  default     = "nats:2.11-alpine"
}

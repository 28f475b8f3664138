provider "aws" {
  region = var.region
}

locals {
  tags = {
    Project = "danmaku"
    Example = "complete"
  }
}

################################################################################
# A small VPC: two public subnets in two Availability Zones, no NAT gateway.
# The tasks get public IP addresses to reach ECR, S3 and CloudWatch, and
# their security group admits only the load balancer. In production, put the
# tasks in private subnets behind NAT gateways or VPC endpoints.
################################################################################

data "aws_availability_zones" "available" {
  state = "available"
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.tags, { Name = var.name })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  count = 2

  vpc_id                  = aws_vpc.this.id
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  availability_zone       = data.aws_availability_zones.available.names[count.index]
  map_public_ip_on_launch = true

  tags = merge(local.tags, { Name = "${var.name}-public-${count.index}" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }

  tags = merge(local.tags, { Name = "${var.name}-public" })
}

resource "aws_route_table_association" "public" {
  count = 2

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# S3 traffic stays inside AWS and skips the internet gateway.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.public.id]

  tags = merge(local.tags, { Name = "${var.name}-s3" })
}

################################################################################
# danmaku
################################################################################

module "danmaku" {
  source = "../../"

  name            = var.name
  container_image = var.container_image

  vpc_id             = aws_vpc.this.id
  public_subnet_ids  = aws_subnet.public[*].id
  private_subnet_ids = aws_subnet.public[*].id
  assign_public_ip   = true

  nats_url            = var.nats_url
  create_nats_cluster = var.nats_url == null

  # Signed tokens when a secret is given; otherwise a demo of anonymous posts.
  auth_secret_arn       = var.auth_secret_arn
  allow_anonymous_posts = var.auth_secret_arn == null

  # A demo: keep a week of history and let terraform destroy empty the bucket.
  object_expiration_days = 7
  force_destroy          = true

  # One task each is enough to try it out.
  ingest = { desired_count = 1, min_count = 1, max_count = 2 }
  origin = { desired_count = 1, min_count = 1, max_count = 4 }
  writer = { desired_count = 1 }

  tags = local.tags
}

data "aws_region" "current" {}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  # Object key = prefix + URL path without its leading slash, so CloudFront
  # can read the bucket with the prefix as its origin path.
  key_prefix  = var.s3_prefix == "" ? "" : "${var.s3_prefix}/"
  origin_path = var.s3_prefix == "" ? "" : "/${var.s3_prefix}"
  store_url   = "s3://${aws_s3_bucket.this.id}${local.origin_path}"

  region               = data.aws_region.current.region
  origin_shield_region = coalesce(var.origin_shield_region, data.aws_region.current.region)

  # CloudFront origins. Reads of buckets and segments go to the origin
  # service first and fail over to S3; the head path goes to the origin
  # service only; everything else (the default behaviour) goes to S3, which
  # holds nothing but buckets and segments. No origin is the ingest listener.
  s3_origin_id      = "s3-store"
  service_origin_id = "origin-service"
  read_group_id     = "origin-service-then-s3"

  # The header CloudFront adds to every request to the origin listener; the
  # listener forwards nothing without it.
  origin_verify_header = "X-Danmaku-Origin-Verify"

  # Paths of the read API (CloudFront and ALB path patterns).
  bucket_path_pattern  = "/v1/rooms/*/buckets/*.json"
  segment_path_pattern = "/v1/rooms/*/segments/*.json"
  head_path_pattern    = "/v1/rooms/*/head"
  ingest_path_pattern  = "/v1/rooms/*/messages"

  alb_tls         = var.alb_certificate_arn != null
  alb_host        = local.alb_tls ? var.alb_domain_name : aws_lb.this.dns_name
  ingest_port     = local.alb_tls ? 443 : 80
  ingest_url      = "${local.alb_tls ? "https" : "http"}://${local.alb_host}"
  container_port  = 8080
  container_name  = "danmaku"
  data_dir        = "/data"
  viewer_tls_cert = var.acm_certificate_arn != null
}

################################################################################
# S3 bucket: the store of sealed buckets and segments
################################################################################

resource "aws_s3_bucket" "this" {
  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? "${var.name}-" : null
  force_destroy = var.force_destroy

  tags = var.tags
}

# Objects are immutable and never versioned: a purge or redaction must really
# delete, and a create-only PUT (If-None-Match: *) decides which writer wins.

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  # SSE-S3: CloudFront's origin access control reads it without a KMS grant.
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-buckets-and-segments"
    status = "Enabled"

    filter {
      prefix = "${local.key_prefix}v1/rooms/"
    }

    expiration {
      days = var.object_expiration_days
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  # CloudFront, and only this distribution, may read objects under the prefix.
  statement {
    sid       = "CloudFrontReadsObjects"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/${local.key_prefix}*"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.this.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

################################################################################
# CloudFront: the read distribution
################################################################################

resource "aws_cloudfront_origin_access_control" "this" {
  name                              = "${var.name}-store"
  description                       = "CloudFront reads the danmaku store bucket with SigV4"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# Buckets and segments: immutable, pre-gzipped, keyed on the path alone.
# Gzip normalisation puts "Accept-Encoding: gzip" (or nothing) in the key, so
# a client without gzip gets the origin's decompressed copy, not the stored
# bytes; it needs a minimum TTL of 0 and a default TTL of at least 1. Objects
# carry "Cache-Control: public, max-age=31536000, immutable".
resource "aws_cloudfront_cache_policy" "objects" {
  name        = "${var.name}-immutable-objects"
  comment     = "danmaku buckets and segments: path only, gzip-normalised"
  min_ttl     = 0
  default_ttl = 86400
  max_ttl     = 31536000

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = false

    cookies_config {
      cookie_behavior = "none"
    }

    headers_config {
      header_behavior = "none"
    }

    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# The head of a room: "Cache-Control: public, max-age=1" from the origin, never
# longer than a second at the edge.
resource "aws_cloudfront_cache_policy" "head" {
  name        = "${var.name}-head"
  comment     = "danmaku room head: path only, at most 1 s"
  min_ttl     = 0
  default_ttl = 1
  max_ttl     = 1

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = false
    enable_accept_encoding_brotli = false

    cookies_config {
      cookie_behavior = "none"
    }

    headers_config {
      header_behavior = "none"
    }

    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# CORS is added at the edge, after the cache, so Origin is not in the key.
resource "aws_cloudfront_response_headers_policy" "this" {
  name    = "${var.name}-cors"
  comment = "danmaku reads: CORS GET and HEAD"

  cors_config {
    access_control_allow_credentials = false
    access_control_max_age_sec       = 86400
    origin_override                  = true

    access_control_allow_headers {
      items = ["*"]
    }

    access_control_allow_methods {
      items = ["GET", "HEAD"]
    }

    access_control_allow_origins {
      items = var.cors_allowed_origins
    }

    access_control_expose_headers {
      items = ["Date", "ETag"]
    }
  }
}

resource "random_password" "origin_verify" {
  length  = 40
  special = false
}

resource "aws_cloudfront_distribution" "this" {
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  comment         = "${var.name}: danmaku reads (buckets, segments, head)"
  price_class     = var.price_class
  aliases         = var.aliases
  web_acl_id      = var.web_acl_id

  # The store: failover for buckets and segments, and the default behaviour.
  origin {
    origin_id                = local.s3_origin_id
    domain_name              = aws_s3_bucket.this.bucket_regional_domain_name
    origin_path              = local.origin_path
    origin_access_control_id = aws_cloudfront_origin_access_control.this.id

    origin_shield {
      enabled              = var.origin_shield_enabled
      origin_shield_region = local.origin_shield_region
    }
  }

  # The origin service behind the load balancer's CloudFront-only listener.
  origin {
    origin_id           = local.service_origin_id
    domain_name         = local.alb_host
    connection_attempts = 2
    connection_timeout  = 5

    custom_origin_config {
      http_port                = var.origin_listener_port
      https_port               = var.origin_listener_port
      origin_protocol_policy   = local.alb_tls ? "https-only" : "http-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = var.origin_read_timeout
      origin_keepalive_timeout = 30
    }

    custom_header {
      name  = local.origin_verify_header
      value = random_password.origin_verify.result
    }

    origin_shield {
      enabled              = var.origin_shield_enabled
      origin_shield_region = local.origin_shield_region
    }
  }

  # Sealed non-empty seconds stay readable when every origin task is down:
  # a 5xx or a timeout from the origin service retries the same key in S3.
  # Never on 4xx: a 404 for a second that has not sealed is the answer.
  origin_group {
    origin_id = local.read_group_id

    failover_criteria {
      status_codes = [500, 502, 503, 504]
    }

    member {
      origin_id = local.service_origin_id
    }

    member {
      origin_id = local.s3_origin_id
    }
  }

  # Anything that is not a read of the API goes to the bucket, which holds only
  # buckets and segments and answers 403 for the rest: there is no route to
  # /admin, to posting or to the metrics through this distribution, and only
  # GET and HEAD are accepted.
  default_cache_behavior {
    target_origin_id           = local.s3_origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.objects.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
  }

  # Objects are stored gzip-encoded; compression at the edge stays off.
  ordered_cache_behavior {
    path_pattern               = local.bucket_path_pattern
    target_origin_id           = local.read_group_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.objects.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
  }

  ordered_cache_behavior {
    path_pattern               = local.segment_path_pattern
    target_origin_id           = local.read_group_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.objects.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
  }

  ordered_cache_behavior {
    path_pattern               = local.head_path_pattern
    target_origin_id           = local.service_origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.head.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
  }

  # CloudFront caches errors for 10 s unless told otherwise, and honours
  # "Cache-Control: no-store" only on 404, 410, 414 and 501. A second that has
  # not sealed is a 404 from the origin service; a second without an object is
  # a 403 from S3 (no ListBucket for CloudFront). Neither may be cached, or
  # the second stays hidden from every viewer of that edge.
  custom_error_response {
    error_code            = 404
    error_caching_min_ttl = 0
  }

  custom_error_response {
    error_code            = 403
    error_caching_min_ttl = 0
  }

  custom_error_response {
    error_code            = 500
    error_caching_min_ttl = var.error_caching_5xx_ttl
  }

  custom_error_response {
    error_code            = 502
    error_caching_min_ttl = var.error_caching_5xx_ttl
  }

  custom_error_response {
    error_code            = 503
    error_caching_min_ttl = var.error_caching_5xx_ttl
  }

  custom_error_response {
    error_code            = 504
    error_caching_min_ttl = var.error_caching_5xx_ttl
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = !local.viewer_tls_cert
    acm_certificate_arn            = var.acm_certificate_arn
    ssl_support_method             = local.viewer_tls_cert ? "sni-only" : null
    minimum_protocol_version       = local.viewer_tls_cert ? "TLSv1.2_2021" : "TLSv1"
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.origin_read_timeout >= 2 * var.hold_seconds && var.origin_read_timeout >= var.hold_seconds + 5
      error_message = "origin_read_timeout must be at least twice hold_seconds and 5 s above it, or held reads time out at the edge."
    }

    precondition {
      condition     = length(var.aliases) == 0 || local.viewer_tls_cert
      error_message = "aliases need acm_certificate_arn (a certificate in us-east-1)."
    }

    precondition {
      condition     = !local.alb_tls || var.alb_domain_name != null
      error_message = "alb_certificate_arn needs alb_domain_name: CloudFront checks the origin's certificate against that name."
    }
  }
}

################################################################################
# Operators: what `danmaku purge` needs (the purge_policy_json output)
################################################################################

data "aws_iam_policy_document" "purge" {
  statement {
    sid       = "PurgeObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.this.arn}/${local.key_prefix}*"]
  }

  statement {
    sid       = "ListObjects"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }

  statement {
    sid       = "InvalidateEdges"
    actions   = ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation", "cloudfront:ListInvalidations"]
    resources = [aws_cloudfront_distribution.this.arn]
  }
}

################################################################################
# Read side
################################################################################

output "cloudfront_domain_name" {
  description = "Domain name of the read distribution: players read https://<this>/v1/rooms/{room}/buckets/{second}.json, /segments/{start}.json and /head."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "cloudfront_distribution_id" {
  description = "ID of the read distribution, which `danmaku purge` invalidates after deleting or redacting objects."
  value       = aws_cloudfront_distribution.this.id
}

output "cloudfront_distribution_arn" {
  description = "ARN of the read distribution (the aws:SourceArn the bucket policy is bound to)."
  value       = aws_cloudfront_distribution.this.arn
}

output "cloudfront_hosted_zone_id" {
  description = "Route 53 hosted zone ID of CloudFront, for alias records of the aliases."
  value       = aws_cloudfront_distribution.this.hosted_zone_id
}

################################################################################
# Store
################################################################################

output "s3_bucket_name" {
  description = "Name of the bucket that holds the sealed buckets and segments."
  value       = aws_s3_bucket.this.id
}

output "s3_bucket_arn" {
  description = "ARN of the store bucket."
  value       = aws_s3_bucket.this.arn
}

output "store_url" {
  description = "The --store value of the writer and origin tasks (s3://bucket/prefix); also what `danmaku purge` and `danmaku backfill` take."
  value       = local.store_url
}

################################################################################
# Write side and operations
################################################################################

output "ingest_url" {
  description = "Base URL of ingest: posters send POST <this>/v1/rooms/{room}/messages."
  value       = local.ingest_url
}

output "alb_dns_name" {
  description = "DNS name of the load balancer; point alb_domain_name at it (CNAME or alias) when you use a certificate."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone ID of the load balancer, for an alias record."
  value       = aws_lb.this.zone_id
}

output "nats_url" {
  description = "The NATS URL every task uses (nats_url, or the created cluster's nodes)."
  value       = local.nats_url
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster running the services."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_names" {
  description = "ECS service name of each role (ingest, writer, origin)."
  value = merge(
    { for role, s in aws_ecs_service.this : role => s.name },
    { writer = aws_ecs_service.writer.name },
  )
}

output "task_role_arns" {
  description = "IAM task role ARN of each role: ingest has no AWS permissions, the writer writes under the prefix, the origin reads."
  value       = { for role, r in aws_iam_role.task : role => r.arn }
}

output "log_group_names" {
  description = "CloudWatch Logs group of each role (JSON lines)."
  value       = { for role, g in aws_cloudwatch_log_group.this : role => g.name }
}

output "purge_policy_json" {
  description = "IAM policy for the operator who runs `danmaku purge`: delete and rewrite objects under the prefix and invalidate the distribution. Attach it to that person's or pipeline's role."
  value       = data.aws_iam_policy_document.purge.json
}

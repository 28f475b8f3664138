output "cloudfront_domain_name" {
  description = "Where players read: https://<this>/v1/rooms/{room}/head and /buckets/{second}.json."
  value       = module.danmaku.cloudfront_domain_name
}

output "cloudfront_distribution_id" {
  description = "The distribution `danmaku purge` invalidates."
  value       = module.danmaku.cloudfront_distribution_id
}

output "s3_bucket_name" {
  description = "The store bucket."
  value       = module.danmaku.s3_bucket_name
}

output "store_url" {
  description = "The --store URL of the writer and origin (and of purge and backfill)."
  value       = module.danmaku.store_url
}

output "ingest_url" {
  description = "Where posters send POST /v1/rooms/{room}/messages."
  value       = module.danmaku.ingest_url
}

output "nats_url" {
  description = "The NATS cluster the services use."
  value       = module.danmaku.nats_url
}

output "log_group_names" {
  description = "CloudWatch Logs group of each role."
  value       = module.danmaku.log_group_names
}

variable "region" {
  description = "AWS Region of the origin, the store and the services. Singapore is close to the Southeast Asian viewers the project was designed for, and has Origin Shield."
  type        = string
  default     = "ap-southeast-1"
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "danmaku-demo"
}

variable "container_image" {
  description = "The danmaku image, built from the repository's Dockerfile and pushed to a registry the tasks can pull from (ECR in this Region is simplest)."
  type        = string
}

variable "nats_url" {
  description = "URL[,URL...] of an existing NATS JetStream cluster reachable from the VPC. If null, the example creates the three-node cluster on ECS and EFS."
  type        = string
  default     = null
}

variable "auth_secret_arn" {
  description = "ARN of a Secrets Manager secret holding the HS256 secret of posters' tokens. If null, the example takes anonymous posts."
  type        = string
  default     = null
}

variable "vpc_cidr" {
  description = "IPv4 range of the example's VPC; two /24 public subnets are carved from its start."
  type        = string
  default     = "10.42.0.0/16"
}

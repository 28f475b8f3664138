terraform {
  # 1.5 for optional object attributes with defaults and check-free
  # preconditions; nothing here needs a newer release.
  required_version = ">= 1.5.7"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.0 renamed data.aws_region's "name" to "region", which main.tf uses.
      version = ">= 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6"
    }
  }
}

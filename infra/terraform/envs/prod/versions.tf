terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (bucket, key, region and
  # lock table come from envs/bootstrap's outputs).
  backend "s3" {}
}

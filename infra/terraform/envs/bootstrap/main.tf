# Bootstrap root: what every env root needs before it can run, created once per account with
# local state (keep terraform.tfstate of this root safe, or migrate it into the bucket afterwards:
# infra/README.md step 1).
#
# - the S3 bucket holding the env roots' state (versioned, encrypted, private, TLS only)
# - the DynamoDB table holding their locks
# - the Route53 public hosted zone of the app's domain (outlives every env; point the registrar's
#   NS records at its name servers)
# - the IAM role Atlantis runs Terraform with (atlantis.tf)

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
  }

  # Partial configuration (backend.hcl). The very first apply, before the bucket exists, runs with a
  # local backend_override.tf and then migrates its state into the bucket (infra/README.md, step 1),
  # so that Atlantis can plan and apply this root like the others.
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "app"                    = "eco2"
      "eco2.io/managed-by"     = "terraform"
      "eco2.io/terraform-root" = "infra/terraform/envs/bootstrap"
    }
  }
}

variable "region" {
  description = "Region of the state bucket and lock table."
  type        = string
  default     = "ap-northeast-2"
}

variable "zone_name" {
  description = "The app's domain, e.g. eco2.example."
  type        = string
}

data "aws_caller_identity" "current" {}

locals {
  state_bucket = "eco2-terraform-state-${data.aws_caller_identity.current.account_id}"
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV_AWS_144:State is small and versioned; cross-region replication of it is not worth a second bucket per account.
  #checkov:skip=CKV_AWS_18:Access to state is audited by CloudTrail; server access logs would need yet another bucket.
  #checkov:skip=CKV2_AWS_62:Nothing consumes state-change events.
  bucket = local.state_bucket
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.state.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_kms_key" "state" {
  description             = "Eco2 Terraform state"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.state_key.json
}

data "aws_iam_policy_document" "state_key" {
  #checkov:skip=CKV_AWS_109:Key policies must name the key as "*"; access is limited to this account's IAM principals.
  #checkov:skip=CKV_AWS_111:Same: a key policy's resource is always the key itself ("*").
  #checkov:skip=CKV_AWS_356:Same: "*" in a key policy means this key.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    id     = "old-state-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  depends_on = [aws_s3_bucket_versioning.state]
}

data "aws_iam_policy_document" "state" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]
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

resource "aws_s3_bucket_policy" "state" {
  bucket     = aws_s3_bucket.state.id
  policy     = data.aws_iam_policy_document.state.json
  depends_on = [aws_s3_bucket_public_access_block.state]
}

resource "aws_dynamodb_table" "locks" {
  name         = "eco2-terraform-locks"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "LockID"

  attribute {
    name = "LockID"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.state.arn
  }

  deletion_protection_enabled = true
}

resource "aws_route53_zone" "app" {
  #checkov:skip=CKV2_AWS_38:DNSSEC needs the registrar's DS record and a KMS key in us-east-1; enable it once the domain is registered (README, "Hardening later").
  #checkov:skip=CKV2_AWS_39:Query logging must go to a us-east-1 log group; not needed for a public zone of a few records.
  name = var.zone_name
}

output "state_key_arn" {
  description = "KMS key of the state bucket and the lock table."
  value       = aws_kms_key.state.arn
}

output "state_bucket" {
  description = "Put into envs/<env>/backend.hcl as bucket."
  value       = aws_s3_bucket.state.id
}

output "lock_table" {
  description = "Put into envs/<env>/backend.hcl as dynamodb_table."
  value       = aws_dynamodb_table.locks.name
}

output "zone_name_servers" {
  description = "Delegate the domain to these at its registrar."
  value       = aws_route53_zone.app.name_servers
}

# The role Atlantis (infra/k8s/overlays/prod/atlantis) runs `terraform plan/apply` with.
#
# Who may assume it: only the prod cluster's worker nodes' role (eco2-prod-addons), whose instance
# profile the Atlantis pod uses through IMDSv2 (a kubeadm cluster has no IRSA; the pod is pinned to
# the workers). The trust names the account and checks the caller's role ARN in a condition, so this
# root can be applied before the prod env exists. That role in turn needs sts:AssumeRole on this one
# (modules/iam, var.assume_roles; envs/prod sets it).
#
# What it may do:
#   - Terraform state, least privilege: the objects under envs/ and bootstrap/ of the state bucket,
#     the lock table's items, the state KMS key for encrypt/decrypt only; nothing else of either;
#   - the resources the roots manage: var.atlantis_managed_policy_arns (PowerUserAccess by default:
#     everything but IAM and Organizations) plus IAM limited to eco2-* roles, policies and instance
#     profiles, which the env roots create.

variable "atlantis_runner_role_name" {
  description = "IAM role of the nodes Atlantis runs on (the prod env's worker role)."
  type        = string
  default     = "eco2-prod-addons"
}

variable "atlantis_managed_policy_arns" {
  description = "Managed policies for the resources the Terraform roots manage (everything but IAM)."
  type        = list(string)
  default     = ["arn:aws:iam::aws:policy/PowerUserAccess"]
}

locals {
  account_id = data.aws_caller_identity.current.account_id
}

data "aws_iam_policy_document" "atlantis_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${local.account_id}:root"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:PrincipalArn"
      values   = ["arn:aws:iam::${local.account_id}:role/${var.atlantis_runner_role_name}"]
    }
  }
}

resource "aws_iam_role" "atlantis" {
  name                 = "eco2-atlantis"
  description          = "Atlantis: terraform plan/apply of infra/terraform"
  assume_role_policy   = data.aws_iam_policy_document.atlantis_trust.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "atlantis_state" {
  statement {
    sid       = "ListStatePrefixes"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["envs/*", "bootstrap/*"]
    }
  }
  statement {
    sid       = "ReadWriteState"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.state.arn}/envs/*", "${aws_s3_bucket.state.arn}/bootstrap/*"]
  }
  statement {
    sid       = "Locks"
    actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.locks.arn]
  }
  statement {
    sid       = "StateKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.state.arn]
  }
}

resource "aws_iam_role_policy" "atlantis_state" {
  name   = "terraform-state"
  role   = aws_iam_role.atlantis.id
  policy = data.aws_iam_policy_document.atlantis_state.json
}

data "aws_iam_policy_document" "atlantis_iam" {
  #checkov:skip=CKV_AWS_286:The env roots create IAM roles and instance profiles for the nodes; writes are limited to eco2-* names in this account, and every change is a reviewed pull request.
  #checkov:skip=CKV_AWS_287:No credentials are exposed: no access keys or login profiles, only roles, policies and instance profiles named eco2-*.
  #checkov:skip=CKV_AWS_288:Only IAM reads of eco2-* objects and the account's policies; no data store is readable through this statement.
  #checkov:skip=CKV_AWS_289:Permissions management is the job of this role (the roots define IAM), bounded to eco2-* names in this account.
  #checkov:skip=CKV_AWS_355:iam:List*/Get* on the account's policies take no narrower resource; writes stay on eco2-* ARNs.
  statement {
    sid = "ManageEco2Iam"
    actions = [
      "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy",
      "iam:TagRole", "iam:UntagRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
      "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
      "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:PassRole",
      "iam:CreatePolicy", "iam:DeletePolicy", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions",
      "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:TagPolicy", "iam:UntagPolicy",
      "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
      "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:TagInstanceProfile",
      "iam:UntagInstanceProfile", "iam:ListInstanceProfilesForRole",
    ]
    resources = [
      "arn:aws:iam::${local.account_id}:role/eco2-*",
      "arn:aws:iam::${local.account_id}:policy/eco2-*",
      "arn:aws:iam::${local.account_id}:instance-profile/eco2-*",
    ]
  }
  statement {
    sid       = "ReadAwsManagedPolicies"
    actions   = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]
    resources = ["arn:aws:iam::aws:policy/*"]
  }
}

resource "aws_iam_role_policy" "atlantis_iam" {
  name   = "eco2-iam"
  role   = aws_iam_role.atlantis.id
  policy = data.aws_iam_policy_document.atlantis_iam.json
}

resource "aws_iam_role_policy_attachment" "atlantis_managed" {
  for_each   = toset(var.atlantis_managed_policy_arns)
  role       = aws_iam_role.atlantis.name
  policy_arn = each.value
}

output "atlantis_role_arn" {
  description = "Role Atlantis assumes (its values file: aws.config role_arn)."
  value       = aws_iam_role.atlantis.arn
}

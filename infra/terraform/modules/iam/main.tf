# Instance profiles. A self-managed kubeadm cluster has no IRSA out of the box, so pods get AWS
# credentials from the node's instance profile through IMDSv2 (hop limit 2, set on the instances).
# Each node role therefore gets only what the pods scheduled there need:
#
#   profile        nodes                              policies
#   control-plane  control plane                      (none beyond SSM)
#   addons         2 workers                          AWS Load Balancer Controller, EBS CSI controller, images S3
#   functions      7 API nodes                        images S3 (the functions' presigned uploads)
#   data           rabbitmq, postgresql, redis, mon.  (none beyond SSM; volumes are attached by the CSI controller)
#
# The AWS Load Balancer Controller and the EBS CSI controller are pinned to the worker nodes
# (nodeSelector eco2.io/role=worker in infra/ansible), which is why only those carry their policies.

locals {
  profiles = {
    control-plane = []
    addons        = ["aws_load_balancer_controller", "ebs_csi", "images_s3"]
    functions     = ["images_s3"]
    data          = []
  }
  attachments = merge([
    for profile, policies in local.profiles : {
      for policy in policies : "${profile}/${policy}" => { profile = profile, policy = policy }
    }
  ]...)
  policy_arns = {
    aws_load_balancer_controller = aws_iam_policy.aws_load_balancer_controller.arn
    ebs_csi                      = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    images_s3                    = aws_iam_policy.images_s3.arn
  }
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  for_each           = local.profiles
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = merge(var.tags, { "eco2.io/profile" = each.key })
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.profiles
  name     = "${var.name}-${each.key}"
  role     = aws_iam_role.node[each.key].name
  tags     = var.tags
}

# Session Manager as the break-glass path when SSH is closed.
resource "aws_iam_role_policy_attachment" "ssm" {
  for_each   = local.profiles
  role       = aws_iam_role.node[each.key].name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# Roles the worker nodes may assume (envs/prod: eco2-atlantis, the role Atlantis runs Terraform with;
# envs/bootstrap defines it and trusts only this env's addons role).
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume_roles" {
  count = length(var.assume_roles) > 0 ? 1 : 0
  statement {
    sid       = "AssumeNamedRoles"
    actions   = ["sts:AssumeRole"]
    resources = [for r in var.assume_roles : "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/${r}"]
  }
}

resource "aws_iam_policy" "assume_roles" {
  count       = length(var.assume_roles) > 0 ? 1 : 0
  name        = "${var.name}-addons-assume-roles"
  description = "Eco2 worker nodes: assume ${join(", ", var.assume_roles)}"
  policy      = data.aws_iam_policy_document.assume_roles[0].json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "assume_roles" {
  count      = length(var.assume_roles) > 0 ? 1 : 0
  role       = aws_iam_role.node["addons"].name
  policy_arn = aws_iam_policy.assume_roles[0].arn
}

resource "aws_iam_role_policy_attachment" "extra" {
  for_each   = local.attachments
  role       = aws_iam_role.node[each.value.profile].name
  policy_arn = local.policy_arns[each.value.policy]
}

# -- the functions: the images bucket only -----------------------------------------------------------
data "aws_iam_policy_document" "images_s3" {
  statement {
    sid       = "ObjectsInTheImagesBucket"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${var.images_bucket_arn}/*"]
  }
  statement {
    sid       = "ListTheImagesBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.images_bucket_arn]
  }
}

resource "aws_iam_policy" "images_s3" {
  name        = "${var.name}-images-s3"
  description = "Eco2 functions: read/write objects of the images bucket, nothing else"
  policy      = data.aws_iam_policy_document.images_s3.json
  tags        = var.tags
}

# -- AWS Load Balancer Controller ----------------------------------------------------------------------
# Statement for statement the controller's own policy for the pinned version (kubernetes-sigs/
# aws-load-balancer-controller docs/install/iam_policy.json at v2.15.0, the app version of chart
# 1.15.0 in infra/ansible/group_vars/all/versions.yml). tests/infra compares this document with that
# upstream policy, kept as a fixture, and fails on any action, resource or condition it would miss:
# a reduced policy looks fine until the controller's first CreateLoadBalancer (tag on create),
# listener tagging (on by default since v2.15) or an account without the ELB service-linked role.
# Resource "*" is inherent to it: load balancers and target groups do not exist when the policy is
# written; writes are scoped by the elbv2.k8s.aws/cluster tag the controller sets.
data "aws_iam_policy_document" "aws_load_balancer_controller" {
  #checkov:skip=CKV_AWS_111:Write actions on not-yet-existing ALBs/target groups cannot be resource-scoped; they are conditioned on the controller's cluster tag instead (upstream policy).
  #checkov:skip=CKV_AWS_356:Describe*/Get* on "*" is how the upstream controller policy is defined; those actions take no resource ARNs.
  statement {
    sid       = "ElbServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["elasticloadbalancing.amazonaws.com"]
    }
  }
  statement {
    sid = "Describe"
    actions = [
      "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:GetCoipPoolUsage", "ec2:DescribeCoipPools",
      "ec2:GetSecurityGroupsForVpc", "ec2:DescribeIpamPools", "ec2:DescribeRouteTables",
      "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
      "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerCertificates",
      "elasticloadbalancing:DescribeSSLPolicies", "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTrustStores", "elasticloadbalancing:DescribeListenerAttributes",
      "elasticloadbalancing:DescribeCapacityReservation",
    ]
    resources = ["*"]
  }
  statement {
    sid = "CertificatesWafShield"
    actions = [
      "cognito-idp:DescribeUserPoolClient", "acm:ListCertificates", "acm:DescribeCertificate",
      "iam:ListServerCertificates", "iam:GetServerCertificate",
      "waf-regional:GetWebACL", "waf-regional:GetWebACLForResource", "waf-regional:AssociateWebACL",
      "waf-regional:DisassociateWebACL",
      "wafv2:GetWebACL", "wafv2:GetWebACLForResource", "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
      "shield:GetSubscriptionState", "shield:DescribeProtection", "shield:CreateProtection",
      "shield:DeleteProtection",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "SecurityGroupRules"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:CreateSecurityGroup"]
    resources = ["*"]
  }
  statement {
    sid       = "TagSecurityGroupOnCreate"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:aws:ec2:*:*:security-group/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["CreateSecurityGroup"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid       = "RetagOwnSecurityGroups"
    actions   = ["ec2:CreateTags", "ec2:DeleteTags"]
    resources = ["arn:aws:ec2:*:*:security-group/*"]
    condition {
      test     = "Null"
      variable = "aws:RequestTag/elbv2.k8s.aws/cluster"
      values   = ["true"]
    }
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid       = "ManageOwnSecurityGroups"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"]
    resources = ["*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid       = "CreateLoadBalancers"
    actions   = ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]
    resources = ["*"]
    condition {
      test     = "Null"
      variable = "aws:RequestTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid = "ListenersAndRules"
    actions = [
      "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule",
    ]
    resources = ["*"]
  }
  statement {
    sid     = "RetagOwnLoadBalancers"
    actions = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
    resources = [
      "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
      "arn:aws:elasticloadbalancing:*:*:loadbalancer/net/*/*",
      "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
    ]
    condition {
      test     = "Null"
      variable = "aws:RequestTag/elbv2.k8s.aws/cluster"
      values   = ["true"]
    }
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid     = "TagListenersAndRules"
    actions = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
    resources = [
      "arn:aws:elasticloadbalancing:*:*:listener/net/*/*/*",
      "arn:aws:elasticloadbalancing:*:*:listener/app/*/*/*",
      "arn:aws:elasticloadbalancing:*:*:listener-rule/net/*/*/*",
      "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*/*/*",
    ]
  }
  statement {
    sid = "ManageOwnLoadBalancers"
    actions = [
      "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
      "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
      "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyCapacityReservation",
      "elasticloadbalancing:ModifyIpPools",
    ]
    resources = ["*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid     = "TagOnCreate"
    actions = ["elasticloadbalancing:AddTags"]
    resources = [
      "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
      "arn:aws:elasticloadbalancing:*:*:loadbalancer/net/*/*",
      "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
    ]
    condition {
      test     = "StringEquals"
      variable = "elasticloadbalancing:CreateAction"
      values   = ["CreateTargetGroup", "CreateLoadBalancer"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid       = "Targets"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = ["arn:aws:elasticloadbalancing:*:*:targetgroup/*/*"]
  }
  statement {
    sid = "ListenerSettings"
    actions = [
      "elasticloadbalancing:SetWebAcl", "elasticloadbalancing:ModifyListener",
      "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
      "elasticloadbalancing:ModifyRule", "elasticloadbalancing:SetRulePriorities",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "aws_load_balancer_controller" {
  name        = "${var.name}-aws-load-balancer-controller"
  description = "AWS Load Balancer Controller on the Eco2 worker nodes"
  policy      = data.aws_iam_policy_document.aws_load_balancer_controller.json
  tags        = var.tags
}
